"""The run engine: start a launch plan, wait, stop on request, record the outcome.

A synchronous run uses :class:`Supervisor` inside the caller's process. An asynchronous run
starts ``python -m mlproj.local_run.supervisor`` detached (its own session) and hands it the job on
stdin, never on disk, because the child environment may hold credentials; that process
records the final status even when the caller has exited.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from mlproj.envs.base import LaunchPlan
from mlproj.errors import ExecutionException
from mlproj.local_run.identity import child_tags
from mlproj.local_run.process import ProcessRunner
from mlproj.statuses import RunStatus
from mlproj.tags import LOG_ARTIFACT_DIR, TAG_ERROR
from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.common import now_ms
from mlproj.tracking.journal import JournaledStore


class Cancelled(BaseException):
    """Raised in the main thread by SIGTERM so a wait unwinds into a clean cancel."""

    @property
    def signum(self) -> int:
        """The signal that cancelled (SIGTERM when raised without one)."""
        return int(self.args[0]) if self.args else int(signal.SIGTERM)


@dataclass
class Job:
    """What a supervisor needs: a plan, where to log, which run to close."""

    run_id: str
    tracking_uri: str
    plan: LaunchPlan
    log_path: Path
    timeout: float | None = None
    upload_log: bool = False  # the store is remote: copy the log into the run at the end

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["plan"]["cwd"] = str(self.plan.cwd)
        data["log_path"] = str(self.log_path)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        plan = data.pop("plan")
        plan["cwd"] = Path(plan["cwd"])
        return cls(plan=LaunchPlan(**plan), log_path=Path(data.pop("log_path")), **data)


class Supervisor:
    """Runs one job to its end and writes the final status exactly once."""

    def __init__(self, job: Job, store: TrackingStore, *, echo: bool = True) -> None:
        self.job = job
        # The end of a run is kept on disk when the store is down, never lost or waited for.
        self.store = store if isinstance(store, JournaledStore) else JournaledStore(store, _warn)
        self.runner = ProcessRunner(job.plan, job.log_path, echo=echo)
        self.status: str = RunStatus.RUNNING
        self.exit_code: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.runner.start()

    def wait(self) -> bool:
        """Wait for the end; Ctrl-C or SIGTERM cancel the run (KILLED) and are re-raised."""
        if self.status != RunStatus.RUNNING:
            return self.status == RunStatus.FINISHED
        try:
            with signals_cancel():
                code = self.runner.wait(timeout=self.job.timeout)
        except (KeyboardInterrupt, Cancelled):
            self.cancel()
            raise
        self._record(code)
        return self.status == RunStatus.FINISHED

    def poll(self) -> str:
        if self.status == RunStatus.RUNNING and self.runner.poll() is not None:
            self._record(self.runner.wait())
        return self.status

    def cancel(self) -> None:
        with self._lock:
            if self.status != RunStatus.RUNNING:
                return
        self.runner.stop("cancel")
        self._record(self.runner.wait())

    def _record(self, code: int) -> None:
        with self._lock:
            if self.status != RunStatus.RUNNING:
                return
            self.exit_code = code
            stopped = self.runner.stopped_by
            if stopped == "cancel":
                status, error = RunStatus.KILLED, "cancelled"
            elif stopped == "timeout":
                status, error = RunStatus.FAILED, f"timed out after {self.job.timeout:g} s"
            elif code == 0:
                status, error = RunStatus.FINISHED, None
            else:
                status, error = RunStatus.FAILED, _describe_exit(code)
            self.status = status
        # The end is when the command ended, even if a busy store takes a while to record it.
        self._write_outcome(status, error, now_ms())

    def _write_outcome(self, status: str, error: str | None, end_time: int) -> None:
        try:
            self._store_outcome(status, error, end_time)
        except ExecutionException as exc:
            # E.g. the run's folder was deleted while it ran: still say how the command ended.
            raise ExecutionException(
                f"The command of run '{self.job.run_id}' ended ({error or 'exit code 0'}) but "
                f"the run could not be marked {status}: {exc}"
            ) from None

    def _store_outcome(self, status: str, error: str | None, end_time: int) -> None:
        store, run_id = self.store, self.job.run_id
        if self.job.upload_log:
            try:
                store.log_artifact(run_id, self.job.log_path, LOG_ARTIFACT_DIR)
            except ExecutionException as exc:
                print(f"mlproj: warning: could not upload the run log: {exc}", file=sys.stderr)
        if error:
            store.set_tag(run_id, TAG_ERROR, error)
        # How the command ended decides, whatever the project's own MLflow client recorded
        # on its way out (its atexit end_run writes FINISHED even after a crash).
        store.set_terminated(run_id, status, end_time=end_time)


def _warn(message: str) -> None:
    print(f"mlproj: warning: {message}", file=sys.stderr, flush=True)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"command was killed by {name}"
    return f"command exited with code {code}"


@contextlib.contextmanager
def signals_cancel() -> Iterator[None]:
    """While in this block in the main thread, turn SIGTERM, SIGHUP (terminal closed) and
    SIGQUIT (Ctrl-\\) into :class:`Cancelled`, so the run is stopped and recorded instead of
    orphaned. The CLI holds it for the whole ``mlproj run`` (fetch and env build included)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Cancelled(signum)

    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main() -> int:
    """Entry of the detached supervisor process: the job arrives as JSON on stdin."""
    job = Job.from_json(sys.stdin.read())
    supervisor = Supervisor(job, get_store(job.tracking_uri), echo=False)
    try:
        supervisor.start()
    except ExecutionException as exc:
        supervisor.store.set_tag(job.run_id, TAG_ERROR, str(exc))
        supervisor.store.set_terminated(job.run_id, RunStatus.FAILED)
        return 1
    supervisor.store.set_tags(job.run_id, child_tags(supervisor.runner.pid))
    try:
        return 0 if supervisor.wait() else 1
    except Cancelled:
        return 1


if __name__ == "__main__":
    sys.exit(main())
