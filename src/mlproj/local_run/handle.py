"""The handle on a run of this machine: in-process supervisor or detached supervisor process."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from typing import TYPE_CHECKING

from mlproj.statuses import RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tags import TAG_ERROR

if TYPE_CHECKING:
    from mlproj.local_run.supervisor import Supervisor
    from mlproj.tracking.base import TrackingStore


class LocalSubmittedRun(SubmittedRun):
    """A run on this machine.

    Synchronous runs are supervised inside this process; asynchronous ones by a detached
    supervisor process, which this handle waits for, polls and signals.
    """

    def __init__(
        self,
        run_id: str,
        *,
        supervisor: Supervisor | None = None,
        process: subprocess.Popen[bytes] | None = None,
        store: TrackingStore | None = None,
    ) -> None:
        if (supervisor is None) == (process is None):
            raise ValueError("give exactly one of supervisor (in-process) or process (detached)")
        self._run_id = run_id
        self._supervisor = supervisor
        self._process = process
        self._store = store

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def error(self) -> str | None:
        """Why an in-process run did not finish, once recorded (None otherwise)."""
        return self._supervisor.error if self._supervisor is not None else None

    @property
    def supervisor(self) -> Supervisor | None:
        """The in-process supervisor (None for a detached run)."""
        return self._supervisor

    def wait(self) -> bool:
        if self._supervisor is not None:
            return self._supervisor.wait()
        assert self._process is not None
        self._process.wait()
        return self._recorded_status() == RunStatus.FINISHED

    def get_status(self) -> str:
        if self._supervisor is not None:
            return self._supervisor.poll()
        assert self._process is not None
        if self._process.poll() is None:
            return RunStatus.RUNNING
        return self._recorded_status()

    def cancel(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            return
        assert self._process is not None
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
        self._process.wait()

    def _recorded_status(self) -> str:
        assert self._store is not None
        status = self._store.get_run_status(self._run_id)
        if status == RunStatus.RUNNING:
            # The supervisor is gone without closing the run (it was killed): it failed.
            self._store.set_tag(self._run_id, TAG_ERROR, "supervisor process ended unexpectedly")
            self._store.set_terminated(self._run_id, RunStatus.FAILED)
            return RunStatus.FAILED
        return status
