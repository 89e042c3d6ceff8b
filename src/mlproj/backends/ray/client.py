"""The Ray Jobs client, imported only when a Ray run is used (the import takes seconds).

Also what Ray's answers mean: statuses, the "already exists" and "does not exist" errors
(plain ``RuntimeError`` with the server's text), and Ray's own lines in a job's log.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mlproj.errors import ExecutionException
from mlproj.statuses import RunStatus

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

_STATUSES = {
    "PENDING": RunStatus.SCHEDULED,
    "RUNNING": RunStatus.RUNNING,
    "SUCCEEDED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "STOPPED": RunStatus.KILLED,
}
# Ray's own lines mixed into a job's log (runtime env set-up, the entrypoint echo).
_RAY_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\tINFO job_manager\.py:\d+ -- ")


def client(address: str) -> JobSubmissionClient:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ExecutionException(
            "The ray backend needs Ray's job client: pip install 'mlproj[ray]' "
            "(ray[default] >= 2.9)"
        ) from None
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
        raise ExecutionException(
            f"Cannot reach the Ray job API at {address}: {first_line(str(exc))}"
        ) from None


def run_status(ray_status: object) -> RunStatus:
    """MLflow's status for a Ray ``JobStatus`` (a str enum); unknown ones count as running."""
    return _STATUSES.get(str(ray_status), RunStatus.RUNNING)


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def already_exists(exc: BaseException) -> bool:
    return "already exists" in str(exc)


def does_not_exist(exc: BaseException) -> bool:
    return "does not exist" in str(exc)


def job_output(text: str, submission_id: str) -> str:
    """A job's log without Ray's own lines: what the command printed."""
    echo = f"Running entrypoint for job {submission_id}: "
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not _RAY_LINE.match(line) and not line.startswith(echo)
    )
