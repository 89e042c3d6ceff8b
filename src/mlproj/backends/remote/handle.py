"""What every handle on a remote run (Kubernetes Job, Databricks run) does the same way.

A :class:`PollingSubmittedRun` polls the remote side until the run ends; its status never goes
back once terminal. When it ends - however it ends - the remote output is kept as run artifact
``mlproj/output.log`` and the terminal status is written to the tracking store once. Ctrl-C
while waiting cancels the remote run. Subclasses say how to read the status (:meth:`_refresh`)
and how to stop the run (:meth:`_stop`).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

from mlproj.backends.remote.watcher import reap
from mlproj.errors import ExecutionException
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tags import LOG_ARTIFACT_DIR, LOG_ARTIFACT_NAME, TAG_ERROR
from mlproj.tracking.base import TrackingStore


def ignore(_: str) -> None:
    return None


class PollingSubmittedRun(SubmittedRun):
    """A run tracked as ``run_id`` that executes elsewhere and is watched by polling."""

    #: Prefix of the temporary folder the output log is written to before upload.
    log_tmp_prefix = "mlproj-remote-log-"

    def __init__(
        self,
        run_id: str,
        store: TrackingStore,
        *,
        poll_interval: float,
        log: Callable[[str], None] = ignore,
    ) -> None:
        self._run_id = run_id
        self._store = store
        self._poll_interval = poll_interval
        self._log = log
        self._status: str = RunStatus.SCHEDULED
        self._reason: str | None = None
        self._recorded = False
        self._log_text: str | None = None
        self._record_lock = threading.Lock()
        #: The detached watcher of an asynchronous submission (see mlproj.backends.remote.watcher).
        self.watcher_pid: int | None = None

    @property
    def run_id(self) -> str:
        return self._run_id

    # -- status ------------------------------------------------------------------------------
    def get_status(self) -> str:
        if self._status not in TERMINAL_STATUSES:
            self._refresh()
        return self._status

    def wait(self) -> bool:
        with self._following_output():
            try:
                while self.get_status() not in TERMINAL_STATUSES:
                    time.sleep(self._poll_interval)
            except KeyboardInterrupt:
                # Ctrl-C while waiting stops the remote run too, and records it as KILLED.
                self.cancel()
                raise
        reap(self.watcher_pid)
        return self._status == RunStatus.FINISHED

    def cancel(self) -> None:
        if self.get_status() in TERMINAL_STATUSES:
            return
        self._stop()

    @abstractmethod
    def _refresh(self) -> None:
        """Read the remote status; on a terminal one, call :meth:`_set_terminal`."""

    @abstractmethod
    def _stop(self) -> None:
        """Stop the remote run (still going), wait until it has stopped, record it."""

    def _following_output(self) -> contextlib.AbstractContextManager[None]:
        """Around a wait: show the remote output as it comes (nothing by default)."""
        return contextlib.nullcontext()

    # -- recording ---------------------------------------------------------------------------
    def _set_terminal(
        self, status: str, reason: str | None, read_log: Callable[[], str | None]
    ) -> None:
        self._status = status
        self._reason = reason
        self._record(status, read_log)

    def _end_tags(self, status: str) -> dict[str, str]:
        """The tags written when the run ends."""
        return {TAG_ERROR: self._reason} if status == RunStatus.FAILED and self._reason else {}

    def _record(self, status: str, read_log: Callable[[], str | None]) -> None:
        with self._record_lock:
            if self._recorded:
                return
            self._recorded = True
        log_text = self._log_text = read_log()
        if log_text is not None:
            with tempfile.TemporaryDirectory(prefix=self.log_tmp_prefix) as tmp:
                path = Path(tmp) / LOG_ARTIFACT_NAME
                path.write_text(log_text, encoding="utf-8")
                self._store.log_artifact(self._run_id, path, LOG_ARTIFACT_DIR)
        self._store.set_tags(self._run_id, self._end_tags(status))
        # The remote code (``mlflow run`` on a cluster) or another watcher (the detached one, or
        # the caller) may have ended the run first; keep what it wrote.
        if self._store.get_run(self._run_id).info.status not in TERMINAL_STATUSES:
            self._store.set_terminated(self._run_id, status)


def watch_main(argv: list[str], reattach: Callable[[TrackingStore, str], SubmittedRun]) -> int:
    """``python -m <run module> TRACKING_URI RUN_ID``: re-attach to the run and wait for it."""
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
