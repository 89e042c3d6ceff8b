"""Retries with exponential backoff: ``mlproj run --retries`` and the scheduler's children.

Kept apart from the scheduler so ``mlproj run`` imports no thread pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mlproj.errors import ExecutionException
from mlproj.records import record, replace
from mlproj.statuses import RunStatus
from mlproj.tags import TAG_ATTEMPT, TAG_RETRY_OF

if TYPE_CHECKING:
    from mlproj.api import RunOptions
    from mlproj.submitted import SubmittedRun


def _quiet(_: str) -> None:
    return None


@record(frozen=True)
class RetryPolicy:
    """Try a FAILED child again ``retries`` times; wait ``delay`` s, doubling each time."""

    retries: int = 0
    delay: float = 1.0
    max_delay: float = 300.0

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before try number ``attempt`` (2 is the first retry)."""
        return float(min(self.max_delay, self.delay * 2 ** max(0, attempt - 2)))


def submit_with_retries(
    options: RunOptions, retry: RetryPolicy, log: Callable[[str], None] = _quiet
) -> SubmittedRun:
    """``mlproj run --retries N``: a FAILED run is tried again as a new run tagged
    ``mlproj.retry_of`` with the failed one's id; the last try's outcome is the result."""
    from mlproj.api import submit

    if retry.retries == 0:
        return submit(options)
    if not options.synchronous:
        raise ExecutionException("--retries needs a run that is waited for (drop --no-wait)")
    previous: str | None = None
    attempt = 1
    while True:
        opened: list[str] = []
        tags = {**(options.tags or {}), TAG_ATTEMPT: str(attempt)}
        if previous:
            tags[TAG_RETRY_OF] = previous
        try:
            return submit(replace(options, tags=tags, on_opened=opened.append))
        except ExecutionException:
            if not opened or attempt > retry.retries:
                raise
            run_id = opened[0]
            if _status_of(options, run_id) != RunStatus.FAILED:
                raise
            attempt += 1
            delay = retry.wait_before(attempt)
            log(f"run {run_id} failed; retry {attempt - 1} of {retry.retries} in {delay:g} s")
            time.sleep(delay)
            previous = run_id


def _status_of(options: RunOptions, run_id: str) -> str:
    from mlproj.tracking import get_store

    try:
        return get_store(options.tracking_uri).get_run_status(run_id)
    except ExecutionException:
        return RunStatus.FAILED
