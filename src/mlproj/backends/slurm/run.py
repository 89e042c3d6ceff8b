"""The handle on a run executing as a Slurm batch job.

Status comes from the queue while slurmctld knows the job (one ``squeue`` shared by every
watcher on the host, see :func:`~mlproj.backends.slurm.commands.queue_snapshot`), then from
accounting or the job-completion file. A job that has left the queue is never taken as a
success: with no record of its end it is FAILED, saying so. Cancel is ``scancel`` and then
waiting until Slurm reports the job ended (``scancel`` exits 0 even for unknown jobs).
The job's output file is followed on the console while a synchronous run is waited for, and
kept as the run's ``mlproj/output.log`` when it ends.

Between two status reads, :meth:`SlurmSubmittedRun.wait` looks for the end marker the batch
script writes as its last action (a ``stat`` every 0.1 s, no Slurm query): once it is there,
the queue is read every 0.05 s until Slurm reports the end, so the end of a job is recorded
within a fraction of a second however long the job ran, not up to a poll interval later.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlproj.backends.remote.handle import PollingSubmittedRun, ignore
from mlproj.backends.slurm import commands
from mlproj.backends.slurm.commands import JobState
from mlproj.errors import ExecutionException
from mlproj.home import home_subdir
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

JOB_ID_TAG = "mlproj.slurm.job_id"
CLUSTER_TAG = "mlproj.slurm.cluster"
OUTPUT_TAG = "mlproj.slurm.output"
SUBMITTED_TAG = "mlproj.slurm.submitted"  # epoch seconds, to tell our job from a reused id
POLL_TAG = "mlproj.slurm.poll_interval"
STATE_TAG = "mlproj.slurm.state"
REASON_TAG = "mlproj.slurm.reason"
EXIT_CODE_TAG = "mlproj.slurm.exit_code"

# How long a job may be missing from the queue and from accounting before it is failed:
# long enough for slurmctld to write the job-completion line after the purge sweep.
MISSING_GRACE_SECONDS = 60.0
MAX_FAILED_POLLS = 30
FIRST_POLL_SECONDS = 0.25
CANCEL_WAIT_SECONDS = 180.0  # KillWait (default 30 s) plus epilogs, on a busy controller
MARKER_TICK_SECONDS = 0.1  # how often the end marker is looked for between status reads
END_POLL_SECONDS = 0.05  # queue reads once the command has ended: Slurm records it in ms
END_FAST_SECONDS = 5.0  # ... for this long, then the usual polls again (a long epilog)


def end_marker_path(output: Path) -> Path:
    """The file the batch script writes the command's exit code to when it ends."""
    return output.with_suffix(".end")


def queue_cache() -> Path:
    return home_subdir("slurm") / "queue.json"


def lookup(
    job_id: str, submitted_at: float, max_age: float, newer_than: float = 0.0
) -> JobState | None:
    """What Slurm says about the job now: queue first (a snapshot taken after ``newer_than``
    and the submission), then where finished jobs are kept."""
    queue = commands.queue_snapshot(
        queue_cache(), max_age, newer_than=max(submitted_at, newer_than)
    )
    state = queue.get(job_id)
    if state is not None:
        return state
    return commands.finished_jobs([job_id], submitted_at).get(job_id)


class SlurmSubmittedRun(PollingSubmittedRun):
    log_tmp_prefix = "mlproj-slurm-log-"

    def __init__(
        self,
        run_id: str,
        store: TrackingStore,
        job_id: str,
        *,
        output: Path,
        submitted_at: float,
        poll_interval: float = 2.0,
        log: Callable[[str], None] = ignore,
        echo_output: bool = False,
    ) -> None:
        # Polls start fast and slow down to ``poll_interval``: a short job is seen ending at
        # once, a long one costs few queries.
        super().__init__(
            run_id, store, poll_interval=min(FIRST_POLL_SECONDS, poll_interval), log=log
        )
        self._max_poll = poll_interval
        self.job_id = job_id
        self.output = output
        self._submitted_at = submitted_at
        self._echo_output = echo_output
        self._slurm: JobState | None = None
        self._missing_since: float | None = None
        self._failed_polls = 0
        self._end_marker = end_marker_path(output)
        self._command_ended: tuple[float, float] | None = None  # (time.time, monotonic) seen

    # -- status ------------------------------------------------------------------------------
    def _refresh(self) -> None:
        self._poll_interval = min(self._max_poll, self._poll_interval * 1.5)
        max_age, ended = self._poll_interval / 2, 0.0
        if self._command_ended is not None:  # a snapshot from after the end, at most 50 ms old
            max_age, ended = END_POLL_SECONDS, self._command_ended[0]
        try:
            state = lookup(self.job_id, self._submitted_at, max_age=max_age, newer_than=ended)
            self._failed_polls = 0
        except ExecutionException:
            # slurmctld restarting or busy must not end the wait; gone for minutes it does.
            self._failed_polls += 1
            if self._failed_polls >= MAX_FAILED_POLLS:
                raise
            return
        if state is None:
            self._job_missing()
            return
        self._missing_since = None
        status = state.status
        if status in TERMINAL_STATUSES:
            self._end(self._with_details(state))
        elif status != RunStatus.SCHEDULED or self._status == RunStatus.SCHEDULED:
            self._status = status

    def _pause(self) -> None:
        if self._command_ended is not None:
            if time.monotonic() - self._command_ended[1] < END_FAST_SECONDS:
                time.sleep(END_POLL_SECONDS)
                return
            super()._pause()
            return
        deadline = time.monotonic() + self._poll_interval
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(MARKER_TICK_SECONDS, left))
            if self._end_marker.exists():
                self._command_ended = (time.time(), time.monotonic())
                return

    def _job_missing(self) -> None:
        now = time.monotonic()
        if self._missing_since is None:
            self._missing_since = now
            return
        if now - self._missing_since < MISSING_GRACE_SECONDS:
            return
        try:
            kept = commands.where_ends_are_kept()
        except ExecutionException:
            kept = ""
        where = (
            f"{kept} has no record of how it ended"
            if kept
            else "the cluster keeps no record of finished jobs (no accounting, no "
            "job-completion file)"
        )
        self._slurm = JobState("UNKNOWN", "left the queue without a record of its end")
        self._set_terminal(
            RunStatus.FAILED,
            f"Slurm job {self.job_id} left the queue and {where}; it is not taken as a success",
            self._read_log,
        )

    def _with_details(self, state: JobState) -> JobState:
        """Reason and exit code, which squeue does not print, from scontrol while it knows."""
        if state.reason and state.exit_code:
            return state
        try:
            fields = commands.scontrol_job(self.job_id)
        except ExecutionException:
            fields = None
        if not fields:
            return state
        reason = fields.get("Reason", "")
        return JobState(
            state.state,
            state.reason or ("" if reason in ("None", "(null)") else reason),
            state.exit_code or fields.get("ExitCode", ""),
        )

    def _end(self, state: JobState) -> None:
        self._slurm = state
        reason = None
        if state.status == RunStatus.FAILED:
            reason = f"Slurm job {self.job_id} {state.state}"
            if state.reason:
                reason += f" ({state.reason})"
            if state.exit_code and state.exit_code != "0:0":
                reason += f", exit code {state.exit_code}"
        elif state.status == RunStatus.KILLED:
            reason = f"Slurm job {self.job_id} cancelled"
        self._set_terminal(state.status, reason, self._read_log)
        with contextlib.suppress(OSError):
            self._end_marker.unlink(missing_ok=True)

    def _end_tags(self, status: str) -> dict[str, str]:
        tags = super()._end_tags(status)
        if self._slurm is not None:
            tags[STATE_TAG] = self._slurm.state
            if self._slurm.reason:
                tags[REASON_TAG] = self._slurm.reason
            if self._slurm.exit_code:
                tags[EXIT_CODE_TAG] = self._slurm.exit_code
        return tags

    # -- cancel ------------------------------------------------------------------------------
    def _stop(self) -> None:
        self._log(f"Cancelling Slurm job {self.job_id}")
        commands.scancel(self.job_id)
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            state = lookup(self.job_id, self._submitted_at, max_age=0.0)
            if state is not None and state.status in TERMINAL_STATUSES:
                # Normally CANCELLED (KILLED); a job that ended on its own first keeps its end.
                self._end(self._with_details(state))
                return
            time.sleep(min(self._poll_interval, 0.5))
        raise ExecutionException(
            f"scancel {self.job_id} was sent, but Slurm still lists the job after "
            f"{CANCEL_WAIT_SECONDS:.0f} s; check `squeue -j {self.job_id}`"
        )

    # -- output ------------------------------------------------------------------------------
    def _read_log(self) -> str | None:
        try:
            return self.output.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None  # the job never started (cancelled or refused while pending)
        except OSError as exc:
            raise ExecutionException(
                f"Cannot read the output of Slurm job {self.job_id} at {self.output}: {exc}"
            ) from exc

    @contextlib.contextmanager
    def _following_output(self) -> Iterator[None]:
        follower = None
        if self._echo_output and self._status not in TERMINAL_STATUSES:
            follower = FileFollower(self.output)
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.finish()


class FileFollower(threading.Thread):
    """Copies a growing file to stdout as it is written (``tail -f``), from its start."""

    def __init__(self, path: Path, poll_interval: float = 0.2) -> None:
        super().__init__(name=f"mlproj-follow-{path.name}", daemon=True)
        self._path = path
        self._poll_interval = poll_interval
        self._finished = threading.Event()

    def finish(self, timeout: float = 10.0) -> None:
        """The run has ended: copy what is left, then stop."""
        self._finished.set()
        self.join(timeout)

    def run(self) -> None:
        out = sys.stdout.buffer
        handle = None
        try:
            while True:
                done = self._finished.is_set()  # read before the last copy: nothing is lost
                if handle is None:
                    with contextlib.suppress(FileNotFoundError):
                        handle = self._path.open("rb")
                if handle is not None:
                    while chunk := handle.read(65536):
                        out.write(chunk)
                        out.flush()
                if done:
                    return
                self._finished.wait(self._poll_interval)
        except OSError:
            return  # only for the user's eyes: the log kept with the run is read separately
        finally:
            if handle is not None:
                handle.close()


# -- re-attaching ---------------------------------------------------------------------------
def reattach(run: Run, store: TrackingStore) -> SlurmSubmittedRun | None:
    """The handle of a Slurm run from the tags its submission wrote; None before sbatch
    accepted the job."""
    tags = run.tags
    job_id, output = tags.get(JOB_ID_TAG), tags.get(OUTPUT_TAG)
    if not job_id or not output:
        return None
    return SlurmSubmittedRun(
        run.run_id,
        store,
        job_id,
        output=Path(output),
        submitted_at=float(tags.get(SUBMITTED_TAG) or 0.0),
        poll_interval=float(tags.get(POLL_TAG) or 2.0),
    )
