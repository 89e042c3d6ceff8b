"""The handle on a run executing as a Databricks one-time job run.

Status strings come from the run's state (``result_state`` when it has ended, else its
``life_cycle_state``). When the run ends, the task's stdout/stderr (as the Jobs API returns
them) is kept as run artifact ``mlproj/output.log`` and the terminal status is recorded once.

``python -m mlproj.backends.databricks_run TRACKING_URI RUN_ID`` re-attaches from the run's tags
and waits: asynchronous submissions start it detached so the end is recorded without a caller.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproj.backends.watcher import reap, spawn_watcher
from mlproj.errors import ExecutionException
from mlproj.submitted import SubmittedRun
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import TERMINAL_STATUSES

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

RUN_ID_TAG = "mlflow.databricks.shellJobRunID"
POLL_TAG = "mlproj.databricks.poll_interval"
LOG_ARTIFACT_DIR = "mlproj"
LOG_NAME = "output.log"

_WAITING = frozenset({"PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY"})
_ENDED = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})


def _ignore(_: str) -> None:
    return None


def run_status(state: Any) -> tuple[str, str | None]:  # noqa: PLR0911 - one line per state
    """(SCHEDULED | RUNNING | FINISHED | FAILED | KILLED, reason) from a Jobs ``RunState``."""
    if state is None:
        return "SCHEDULED", None
    result = _name(state.result_state)
    life = _name(state.life_cycle_state)
    message = state.state_message or None
    if result == "SUCCESS":
        return "FINISHED", None
    if result in ("CANCELED", "UPSTREAM_CANCELED"):
        return "KILLED", message or "cancelled"
    if result is not None:
        return "FAILED", f"{result}: {message}" if message else result
    if life in _ENDED:
        return "FAILED", f"{life}: {message}" if message else life
    if life in _WAITING or life is None:
        return "SCHEDULED", None
    return "RUNNING", None


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


class DatabricksSubmittedRun(SubmittedRun):
    """Run ``databricks_run_id`` of the workspace behind ``client``, tracked as ``run_id``."""

    def __init__(
        self,
        run_id: str,
        databricks_run_id: int,
        client: WorkspaceClient,
        store: TrackingStore,
        *,
        poll_interval: float = 30.0,
        log: Callable[[str], None] = _ignore,
    ) -> None:
        self._run_id = run_id
        self.databricks_run_id = databricks_run_id
        self._client = client
        self._store = store
        self._poll_interval = poll_interval
        self._log = log
        self._status = "SCHEDULED"
        self._recorded = False
        self._record_lock = threading.Lock()
        #: The detached watcher of an asynchronous submission (see mlproj.backends.watcher).
        self.watcher_pid: int | None = None

    @property
    def run_id(self) -> str:
        return self._run_id

    def get_status(self) -> str:
        if self._status not in TERMINAL_STATUSES:
            self._refresh()
        return self._status

    def wait(self) -> bool:
        try:
            while self.get_status() not in TERMINAL_STATUSES:
                time.sleep(self._poll_interval)
        except KeyboardInterrupt:
            # Ctrl-C while waiting stops the remote run too, and records it as KILLED.
            self.cancel()
            raise
        reap(self.watcher_pid)
        return self._status == "FINISHED"

    def cancel(self) -> None:
        if self.get_status() in TERMINAL_STATUSES:
            return
        from databricks.sdk.errors.base import DatabricksError

        self._log(f"Cancelling Databricks run {self.databricks_run_id}")
        try:
            self._client.jobs.cancel_run(self.databricks_run_id)
        except DatabricksError as exc:
            raise ExecutionException(
                f"Cancelling Databricks run {self.databricks_run_id} failed: {exc}"
            ) from exc
        self.wait()
        if self._status == "KILLED":
            # Whatever the cluster's code recorded while dying, the run was cancelled.
            self._store.set_terminated(self._run_id, "KILLED")

    def _refresh(self) -> None:
        from databricks.sdk.errors.base import DatabricksError

        try:
            run = self._client.jobs.get_run(self.databricks_run_id)
        except DatabricksError as exc:
            raise ExecutionException(
                f"Reading Databricks run {self.databricks_run_id} failed: {exc}"
            ) from exc
        status, reason = run_status(run.state)
        if status in TERMINAL_STATUSES:
            self._status = status
            self._record(status, reason, run)
        else:
            self._status = status

    def _task_logs(self, run: Any) -> str | None:
        """The stdout/stderr of the run's task, when the Jobs API keeps it."""
        from databricks.sdk.errors.base import DatabricksError

        tasks = run.tasks or []
        if not tasks or tasks[0].run_id is None:
            return None
        try:
            output = self._client.jobs.get_run_output(tasks[0].run_id)
        except DatabricksError as exc:
            self._log(
                f"Could not read the output of Databricks run {self.databricks_run_id}: {exc}"
            )
            return None
        parts = [p for p in (output.logs, output.error, output.error_trace) if p]
        return "\n".join(parts) if parts else None

    def _record(self, status: str, reason: str | None, run: Any) -> None:
        with self._record_lock:
            if self._recorded:
                return
            self._recorded = True
        text = self._task_logs(run)
        if text is not None:
            with tempfile.TemporaryDirectory(prefix="mlproj-databricks-log-") as tmp:
                path = Path(tmp) / LOG_NAME
                path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
                self._store.log_artifact(self._run_id, path, LOG_ARTIFACT_DIR)
        # ``mlflow run --run-id`` on the cluster re-tags the run as a local one; undo that.
        tags = {"mlflow.project.backend": "databricks"}
        if status == "FAILED" and reason:
            tags["mlproj.error"] = reason
        self._store.set_tags(self._run_id, tags)
        # The code on the cluster (mlflow run) usually ends the run itself; keep what it wrote.
        if self._store.get_run(self._run_id).info.status not in TERMINAL_STATUSES:
            self._store.set_terminated(self._run_id, status)


# -- re-attaching (detached watcher for asynchronous runs) -----------------------------------
def start_watcher(tracking_uri: str, run_id: str) -> int:
    """Start a detached process that waits for the run and records its end; return its pid."""
    return spawn_watcher("mlproj.backends.databricks_run", tracking_uri, run_id)


def reattach(store: TrackingStore, run_id: str) -> DatabricksSubmittedRun:
    from mlproj.backends.databricks_client import workspace_client

    tags = store.get_run(run_id).tags
    databricks_run_id = tags.get(RUN_ID_TAG)
    if not databricks_run_id:
        raise ExecutionException(f"Run {run_id} was not submitted to Databricks by mlproj")
    return DatabricksSubmittedRun(
        run_id,
        int(databricks_run_id),
        workspace_client(store.tracking_uri),
        store,
        poll_interval=float(tags.get(POLL_TAG) or 30.0),
    )


def _main(argv: list[str]) -> int:
    from mlproj.tracking import get_store

    tracking_uri, run_id = argv
    try:
        return 0 if reattach(get_store(tracking_uri), run_id).wait() else 1
    except ExecutionException as exc:
        print(f"mlproj: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a watcher reports any failure in one line
        print(f"mlproj: watcher stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
