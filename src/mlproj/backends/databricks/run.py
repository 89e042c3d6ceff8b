"""The handle on a run executing as a Databricks one-time job run.

Status strings come from the run's state (``result_state`` when it has ended, else its
``life_cycle_state``). When the run ends, the task's stdout/stderr (as the Jobs API returns
them) is kept as run artifact ``mlproj/output.log`` and the terminal status is recorded once.

:func:`reattach` rebuilds the handle from the run's tags (detached watcher, ``runs cancel``,
``runs reap``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlproj.backends.remote.handle import PollingSubmittedRun, ignore
from mlproj.errors import ExecutionException
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tags import MLFLOW_BACKEND
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

RUN_ID_TAG = "mlflow.databricks.shellJobRunID"
POLL_TAG = "mlproj.databricks.poll_interval"

_WAITING = frozenset({"PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY"})
_ENDED = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})


def run_status(state: Any) -> tuple[str, str | None]:  # noqa: PLR0911 - one line per state
    """(SCHEDULED | RUNNING | FINISHED | FAILED | KILLED, reason) from a Jobs ``RunState``."""
    if state is None:
        return RunStatus.SCHEDULED, None
    result = _name(state.result_state)
    life = _name(state.life_cycle_state)
    message = state.state_message or None
    if result == "SUCCESS":
        return RunStatus.FINISHED, None
    if result in ("CANCELED", "UPSTREAM_CANCELED"):
        return RunStatus.KILLED, message or "cancelled"
    if result is not None:
        return RunStatus.FAILED, f"{result}: {message}" if message else result
    if life in _ENDED:
        return RunStatus.FAILED, f"{life}: {message}" if message else life
    if life in _WAITING or life is None:
        return RunStatus.SCHEDULED, None
    return RunStatus.RUNNING, None


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


class DatabricksSubmittedRun(PollingSubmittedRun):
    """Run ``databricks_run_id`` of the workspace behind ``client``, tracked as ``run_id``."""

    log_tmp_prefix = "mlproj-databricks-log-"

    def __init__(
        self,
        run_id: str,
        databricks_run_id: int,
        client: WorkspaceClient,
        store: TrackingStore,
        *,
        poll_interval: float = 30.0,
        log: Callable[[str], None] = ignore,
    ) -> None:
        super().__init__(run_id, store, poll_interval=poll_interval, log=log)
        self.databricks_run_id = databricks_run_id
        self._client = client

    def _stop(self) -> None:
        from databricks.sdk.errors.base import DatabricksError

        self._log(f"Cancelling Databricks run {self.databricks_run_id}")
        try:
            self._client.jobs.cancel_run(self.databricks_run_id)
        except DatabricksError as exc:
            raise ExecutionException(
                f"Cancelling Databricks run {self.databricks_run_id} failed: {exc}"
            ) from exc
        self.wait()  # until Databricks reports it ended; recorded then, as CANCELED -> KILLED

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
            self._set_terminal(status, reason, lambda: self._task_logs(run))
        else:
            self._status = status

    def _task_logs(self, run: Any) -> str | None:
        """The stdout/stderr of the run's task, when the Jobs API keeps it; ExecutionException
        when it cannot be read (auth, network): that is not a run without output."""
        from databricks.sdk.errors.base import DatabricksError

        tasks = run.tasks or []
        if not tasks or tasks[0].run_id is None:
            return None
        try:
            output = self._client.jobs.get_run_output(tasks[0].run_id)
        except DatabricksError as exc:
            raise ExecutionException(
                f"Could not read the output of Databricks run {self.databricks_run_id}: {exc}"
            ) from exc
        parts = [p for p in (output.logs, output.error, output.error_trace) if p]
        text = "\n".join(parts)
        return (text if text.endswith("\n") else text + "\n") if parts else None

    def _end_tags(self, status: str) -> dict[str, str]:
        # ``mlflow run --run-id`` on the cluster re-tags the run as a local one; undo that.
        return {MLFLOW_BACKEND: "databricks", **super()._end_tags(status)}


# -- re-attaching ---------------------------------------------------------------------------
def reattach(run: Run, store: TrackingStore) -> DatabricksSubmittedRun | None:
    """The handle of a Databricks run, from the tags its submission wrote; None before
    Databricks accepted it (tag ``mlflow.databricks.shellJobRunID`` not written yet)."""
    from mlproj.backends.databricks.connection import workspace_client

    tags = run.tags
    databricks_run_id = tags.get(RUN_ID_TAG)
    if not databricks_run_id:
        return None
    return DatabricksSubmittedRun(
        run.run_id,
        int(databricks_run_id),
        workspace_client(store.tracking_uri),
        store,
        poll_interval=float(tags.get(POLL_TAG) or 30.0),
    )
