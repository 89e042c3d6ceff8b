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
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from mlproj.envs.base import LaunchPlan
from mlproj.errors import ExecutionException
from mlproj.local_run.identity import child_tags, identity_tags
from mlproj.local_run.process import ProcessRunner
from mlproj.records import asdict, field, record
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tags import LOG_ARTIFACT_DIR, TAG_CANCEL, TAG_ERROR
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


@record
class Job:
    """What a supervisor needs: a plan, where to log, which run to close."""

    run_id: str
    tracking_uri: str
    plan: LaunchPlan
    log_path: Path
    timeout: float | None = None
    upload_log: bool = False  # the store is remote: copy the log into the run at the end
    # Params logged at the end unless the project logged them (spec.params.logged_at_end).
    deferred_params: dict[str, str] = field(default_factory=dict)

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

    def __init__(
        self, job: Job, store: TrackingStore, *, echo: bool = True, caller_reads: bool = False
    ) -> None:
        self.job = job
        # The end of a run is kept on disk when the store is down, never lost or waited for.
        self.store = store if isinstance(store, JournaledStore) else JournaledStore(store, _warn)
        self.runner = ProcessRunner(job.plan, job.log_path, echo=echo, caller_reads=caller_reads)
        self.error: str | None = None  # why it did not finish, once recorded
        self.status: str = RunStatus.RUNNING
        self.exit_code: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.runner.start()
        _started[self.job.run_id] = self

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
        if self.runner.read_elsewhere:
            return  # the loop reading its output records it (KILLED) once that has ended
        self._record(self.runner.wait())

    def _record(self, code: int) -> None:
        _started.pop(self.job.run_id, None)
        with self._lock:
            if self.status != RunStatus.RUNNING:
                return
            self.exit_code = code
            stopped = self.runner.stopped_by
            if stopped == "cancel":
                status, error = RunStatus.KILLED, "cancelled"
            elif stopped == "timeout":
                status, error = RunStatus.FAILED, f"timed out after {self.job.timeout:g} s"
            elif code != 0 and self._cancel_requested():
                # `mlproj runs cancel` stopped this command alone (see identity.request_cancel).
                status, error = RunStatus.KILLED, "cancelled (mlproj runs cancel)"
                self.runner.run_cancel_commands()
            elif code == 0 and self.runner.log_error is not None:
                # What the run printed is partly lost (a full disk): not a clean finish.
                status = RunStatus.FAILED
                lost = self.runner.log_error
                error = f"the command exited 0 but its output log is incomplete: {lost}"
            elif code == 0:
                status, error = RunStatus.FINISHED, None
            else:
                status, error = RunStatus.FAILED, _describe_exit(code)
            self.status, self.error = status, error
        # The end is when the command ended, even if a busy store takes a while to record it
        # or processes the command left running held its output a while longer.
        self._write_outcome(status, error, self.runner.exited_ms or now_ms())

    def _cancel_requested(self) -> bool:
        """The run carries the mark of ``mlproj runs cancel`` (read only for a command that
        did not exit 0: the run's success path reads nothing back)."""
        try:
            return TAG_CANCEL in self.store.get_run(self.job.run_id).tags
        except ExecutionException:
            return False

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
        if self.job.deferred_params:
            try:  # journaled with the rest while the store is unreachable
                store.log_params_at_end(run_id, self.job.deferred_params)
            except ExecutionException as exc:  # the status matters more than these params
                print(f"mlproj: warning: could not log the run's params: {exc}", file=sys.stderr)
        if error:
            store.set_tag(run_id, TAG_ERROR, error)
        # How the command ended decides, whatever the project's own MLflow client recorded
        # on its way out (its atexit end_run writes FINISHED even after a crash).
        store.set_terminated(run_id, status, end_time=end_time)


# The supervisors of this process whose command has started and whose end is not recorded yet.
# A caller unwound between the start and the wait (a Ctrl-C in that instant) stops the
# command through it, rather than closing the run with the command still running.
_started: dict[str, Supervisor] = {}


def stop_started(run_id: str) -> None:
    """Stop the command of ``run_id`` if this process started it and it is still running."""
    supervisor = _started.pop(run_id, None)
    if supervisor is not None and supervisor.runner.stopped_by is None:
        supervisor.cancel()


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


_CANCELLING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Main thread only (signals reach no other): how deep in signals_cancel blocks we are, and
# where a signals_deferred block inside one notes the signals it holds.
_cancel_depth = 0
_held: list[int] | None = None


def _cancel_on_signal(signum: int, frame: FrameType | None) -> None:
    if _held is not None:
        _held.append(signum)
        return
    raise Cancelled(signum)


# Inside signals_cancel: SIGINT's handler before it, called when no signals_deferred holds.
_outer_sigint: Callable[[int, FrameType | None], Any] | int | None = None


def _interrupt_unless_held(signum: int, frame: FrameType | None) -> None:
    if _held is not None:
        _held.append(signum)
        return
    outer = _outer_sigint
    if callable(outer):
        outer(signum, frame)
    elif outer == signal.SIG_DFL:  # as if no handler had been there: the process ends
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.raise_signal(signal.SIGINT)
    elif outer != signal.SIG_IGN:  # a handler not set from Python: Python's default
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_cancel() -> Iterator[None]:
    """While in this block in the main thread, turn SIGTERM, SIGHUP (terminal closed) and
    SIGQUIT (Ctrl-\\) into :class:`Cancelled`, so the run is stopped and recorded instead of
    orphaned. The CLI holds it for the whole ``mlproj run`` (fetch and env build included).
    Inside another such block it changes nothing (a sweep holds one around all its trials)."""
    global _cancel_depth  # noqa: PLW0603 - the process's signal handlers are global too
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _cancel_depth:
        _cancel_depth += 1
        try:
            yield
        finally:
            _cancel_depth -= 1
        return
    global _outer_sigint  # noqa: PLW0603
    previous = {sig: signal.signal(sig, _cancel_on_signal) for sig in _CANCELLING}
    # SIGINT too, behaving as before unless a signals_deferred block holds it: such blocks
    # (two per sweep trial) then only set _held, with no handler to swap.
    _outer_sigint = previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt_unless_held)
    _cancel_depth = 1
    try:
        yield
    finally:
        _cancel_depth = 0
        for sig, old in previous.items():
            signal.signal(sig, old)
        _outer_sigint = None


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """While in this block, SIGTERM, SIGHUP, SIGQUIT and SIGINT are only noted in the list
    it yields, so nothing unwinds half-way between starting a command and recording who it
    is. Handlers do not survive exec: the command itself gets the default ones."""
    global _held  # noqa: PLW0603 - read by the signal handler
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending  # signals reach the main thread only
        return

    def note(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    held_by_cancel = signal.getsignal(signal.SIGINT) is _interrupt_unless_held
    if _cancel_depth and _held is None and held_by_cancel:
        # Inside signals_cancel (every trial of a sweep): its handlers note every signal
        # while _held is set, so no handler changes.
        _held = pending
        try:
            yield pending
        finally:
            _held = None
        return
    signals = (*_CANCELLING, signal.SIGINT)
    previous = {sig: signal.signal(sig, note) for sig in signals}
    try:
        yield pending
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def raise_held(pending: list[int]) -> None:
    """After a signals_deferred block: raise what the first signal it held would have raised
    (KeyboardInterrupt for SIGINT, Cancelled for the others); nothing when none came."""
    if pending:
        raise KeyboardInterrupt if pending[0] == signal.SIGINT else Cancelled(pending[0])


def main() -> int:
    """Entry of the detached supervisor process: the job arrives as JSON on stdin.

    Signals are held from the start until the wait begins: who supervises the run is
    recorded before the command starts, and who the command is right after, so ``runs
    reap`` can always find what to stop. A command whose identity cannot be recorded is
    stopped at once.
    """
    with signals_deferred() as pending:
        job = Job.from_json(sys.stdin.read())
        # Identities go straight to the store: `runs reap` reads them there, not in a journal.
        # Outcomes may wait in the journal while the store is down.
        store = get_store(job.tracking_uri)
        record = JournaledStore(store, _warn)
        try:
            store.set_tags(job.run_id, identity_tags())
        except Exception as exc:  # noqa: BLE001 - recorded as the run's failure
            _fail_unstarted(record, job.run_id, f"could not record the supervisor: {exc}")
            return 1
        if _refuse_start(store, record, job.run_id, pending):
            return 1
        supervisor = Supervisor(job, record, echo=False)
        try:
            supervisor.start()
        except ExecutionException as exc:
            _fail_unstarted(record, job.run_id, str(exc))
            return 1
        try:
            runner = supervisor.runner
            store.set_tags(job.run_id, child_tags(runner.pid, runner.start_ticks()))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the command must not stay
            supervisor.runner.stop("cancel")
            _fail_unstarted(record, job.run_id, f"could not record the command's identity: {exc}")
            return 1
        try:
            with signals_cancel():
                if pending:  # a signal held above: cancel now, as if it came during the wait
                    raise Cancelled(pending[0])
                return 0 if supervisor.wait() else 1
        except (Cancelled, KeyboardInterrupt):
            supervisor.cancel()
            return 1


def _refuse_start(
    store: TrackingStore, record: TrackingStore, run_id: str, pending: list[int]
) -> bool:
    """True when the command must not start: a signal came first, or the caller died before
    handing the run over and it was settled as an orphan meanwhile (starting the command then
    would run it under an ended run)."""
    if pending:
        _fail_unstarted(record, run_id, "cancelled before the command started", killed=True)
        return True
    try:
        settled = store.get_run_status(run_id) in TERMINAL_STATUSES
    except Exception:  # noqa: BLE001 - the store answered a moment ago; start the run
        settled = False
    if settled:
        print(f"mlproj: run {run_id} was settled before its supervisor started", file=sys.stderr)
    return settled


def _fail_unstarted(store: TrackingStore, run_id: str, error: str, *, killed: bool = False) -> None:
    """Record why the command is not running (best effort: the store may be what fails)."""
    try:
        store.set_tag(run_id, TAG_ERROR, error)
        store.set_terminated(run_id, RunStatus.KILLED if killed else RunStatus.FAILED)
    except Exception as exc:  # noqa: BLE001 - said in the supervisor's own log
        print(
            f"mlproj: error: run {run_id}: {error}; recording that failed too: {exc}",
            file=sys.stderr,
        )
    else:
        print(f"mlproj: error: run {run_id}: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
