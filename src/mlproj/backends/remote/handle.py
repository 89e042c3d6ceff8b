"""What every handle on a remote run (Kubernetes Job, Databricks run, a plugin's job) does the
same way.

A :class:`PollingSubmittedRun` polls the remote side until the run ends; its status never goes
back once terminal. When it ends - however it ends - the remote output is kept as run artifact
``mlproj/output.log`` and the terminal status is written to the tracking store once, as the
remote side reported it (job succeeded FINISHED, failed FAILED, cancelled KILLED), whatever the
project's own MLflow client wrote on its way out. A log that cannot be read or uploaded never
keeps the run RUNNING: the reason is kept in tag ``mlproj.log.error`` instead. Ctrl-C while
waiting cancels the remote run.

A new remote backend subclasses it and says how to read the status (:meth:`_refresh`, calling
:meth:`_set_terminal` on a terminal one) and how to stop the run (:meth:`_stop`); see
``docs/backends/plugins.md``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

from mlproj.backends.remote.watcher import reap
from mlproj.errors import ExecutionException, StoreUnreachable
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tags import (
    LOG_ARTIFACT_DIR,
    LOG_ARTIFACT_NAME,
    TAG_ERROR,
    TAG_LOG_ERROR,
    TAG_OUTCOME,
    TAG_PARAMS_AT_END,
)
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

# Tag values are limited (MLflow: 8000 characters for tags in the file store).
_MAX_REASON = 4000


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
                    self._pause()
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

    def _pause(self) -> None:
        """Between two status reads of :meth:`wait`; a backend that learns of the end some
        cheaper way than a status read returns early."""
        time.sleep(self._poll_interval)

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
        if status == RunStatus.FAILED and self._reason:
            return {TAG_ERROR: self._reason[:_MAX_REASON]}
        return {}

    def _record(self, status: str, read_log: Callable[[], str | None]) -> None:
        from mlproj.tracking.journal import JournaledStore

        with self._record_lock:
            if self._recorded:
                return
            # A tracking server down at this moment must not lose the end: what it cannot take
            # is journaled and sent by the next mlproj command (or `mlproj runs sync`).
            store = (
                self._store
                if isinstance(self._store, JournaledStore)
                else JournaledStore(self._store, self._log)
            )
            log_error: str | None = "interrupted while the output log was kept"
            try:
                log_error = self._keep_log(store, read_log)
            finally:
                # Whatever happened to the log (even Ctrl-C), the run gets its final status.
                self._write_end(store, status, log_error)
                self._recorded = True

    def _keep_log(self, store: TrackingStore, read_log: Callable[[], str | None]) -> str | None:
        """Upload the remote output as the log artifact; why it could not be, else None."""
        try:
            log_text = self._log_text = read_log()
            if log_text is None:
                return None
            with tempfile.TemporaryDirectory(prefix=self.log_tmp_prefix) as tmp:
                path = Path(tmp) / LOG_ARTIFACT_NAME
                path.write_text(log_text, encoding="utf-8")
                store.log_artifact(self._run_id, path, LOG_ARTIFACT_DIR)
        except Exception as exc:  # noqa: BLE001 - a lost log must not keep the run RUNNING
            from mlproj.redaction import Redactor, secrets_from_env

            # Kept in a tag and shown by `runs logs`: never with a token or password in it.
            redact = Redactor(secrets_from_env())
            reason = redact(str(exc) if isinstance(exc, ExecutionException) else _describe(exc))
            self._log(f"warning: the output log of run {self._run_id} was not kept: {reason}")
            return reason[:_MAX_REASON]
        return None

    def _write_end(self, store: TrackingStore, status: str, log_error: str | None) -> None:
        try:
            current = store.get_run(self._run_id)
        except StoreUnreachable:
            current = None  # written to the journal below
        if (
            current is not None
            and current.info.status in TERMINAL_STATUSES
            and TAG_OUTCOME in current.tags
        ):
            # Another mlproj process watching the same remote run (the detached watcher, or
            # `runs cancel`) recorded its end first, from the same source: keep it.
            self._status = current.info.status
            return
        self._log_params_at_end(store, current)
        tags = {**self._end_tags(status), TAG_OUTCOME: status}
        if log_error:
            tags[TAG_LOG_ERROR] = log_error
        store.set_tags(self._run_id, tags)
        # Overrides what the project's own MLflow client wrote on its way out (its exit hook
        # ends the run FINISHED even when the script crashed).
        store.set_terminated(self._run_id, status)

    def _log_params_at_end(self, store: TrackingStore, current: Run | None) -> None:
        """The number params the command got as written (``50`` for a float) and the project
        did not log itself (it may have logged ``50.0``, which the store would refuse beside
        ``50``: MLflow issues 3536, 2820); see :func:`mlproj.spec.params.logged_at_end`."""
        if current is None:  # what the project logged is unknown: logging could clash
            return
        raw = current.tags.get(TAG_PARAMS_AT_END)
        if not raw:
            return
        from mlproj.spec.params import logged_at_end

        try:
            deferred = json.loads(raw)
            params = logged_at_end(deferred, current.params) if isinstance(deferred, dict) else {}
            if params:
                store.log_batch(self._run_id, params=params)
        except (ValueError, ExecutionException) as exc:  # the status matters more
            self._log(f"warning: could not log the run's params: {exc}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
