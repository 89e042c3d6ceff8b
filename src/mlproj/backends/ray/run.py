"""The handle on a run executing as a Ray job.

Status from ``get_job_info`` (PENDING -> SCHEDULED, RUNNING, SUCCEEDED -> FINISHED, FAILED ->
FAILED with the exit code and the first line of Ray's message as tags, STOPPED -> KILLED).
While someone waits, the job's log is tailed into a file of this host (``mlproj runs logs
--follow`` reads it) and, for a synchronous run, to the console; the whole log is read again
when the job ends and kept as ``mlproj/output.log``.

Cancel is ``stop_job``. Ray answers True for a PENDING job and does nothing
(ray-project/ray#58353): the job starts later, runs its command and only then stops. So cancel
repeats ``stop_job`` until Ray reports the job ended, and the run is KILLED only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproj.backends.ray import client as ray_client
from mlproj.backends.remote.handle import PollingSubmittedRun, ignore
from mlproj.errors import ExecutionException
from mlproj.home import home_subdir
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tags import LOG_ARTIFACT_NAME, TAG_HOST, TAG_LOG
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

ADDRESS_TAG = "mlproj.ray.address"
SUBMISSION_TAG = "mlproj.ray.submission_id"
POLL_TAG = "mlproj.ray.poll_interval"
TIMEOUT_TAG = "mlproj.ray.timeout"
STATUS_TAG = "mlproj.ray.status"
EXIT_CODE_TAG = "mlproj.ray.exit_code"
MESSAGE_TAG = "mlproj.ray.message"
ERROR_TYPE_TAG = "mlproj.ray.error_type"
# A cancel asked while the job was PENDING, which Ray cannot honour yet: whoever watches the
# run keeps calling stop_job until Ray reports the job ended.
STOP_TAG = "mlproj.ray.stop_requested"

MAX_FAILED_POLLS = 30
FIRST_POLL_SECONDS = 0.25
# Status reads stay at FIRST_POLL_SECONDS this long after the submission, and again this long
# once the job is seen running, before slowing down to the poll interval: a short job's end is
# recorded within a quarter second (a read is one small HTTP GET to the job API; a trivial
# job can go from PENDING to SUCCEEDED between two reads), a long one costs few reads.
FAST_WINDOW_SECONDS = 10.0
CANCEL_WAIT_SECONDS = 120.0  # for a running job to stop
PENDING_STOP_WAIT_SECONDS = 15.0  # for a pending one, before leaving it to a watcher


def submission_id(run_id: str) -> str:
    """One Ray job per run: a resubmission after a crash finds the job instead of doubling it."""
    return f"mlproj-{run_id}"


def local_log_path(run_id: str) -> Path:
    folder = home_subdir("logs") / run_id
    folder.mkdir(exist_ok=True)
    return folder / LOG_ARTIFACT_NAME


class RaySubmittedRun(PollingSubmittedRun):
    log_tmp_prefix = "mlproj-ray-log-"

    def __init__(
        self,
        run_id: str,
        store: TrackingStore,
        job_client: JobSubmissionClient,
        job_id: str,
        *,
        poll_interval: float = 1.0,
        timeout: float | None = None,
        log: Callable[[str], None] = ignore,
        echo_output: bool = False,
        stop_requested: bool = False,
    ) -> None:
        # Polls start fast and slow down to ``poll_interval``: a short job is seen ending at
        # once, a long one costs few queries.
        super().__init__(
            run_id, store, poll_interval=min(FIRST_POLL_SECONDS, poll_interval), log=log
        )
        self._max_poll = poll_interval
        self.submission_id = job_id
        self._client = job_client
        self._timeout = timeout
        self._echo_output = echo_output
        self._details: dict[str, str] = {}
        self._failed_polls = 0
        self._timed_out = False
        self._tail: LogTail | None = None
        self._stop_requested = stop_requested
        self._fast_until = time.monotonic() + FAST_WINDOW_SECONDS  # of the fast reads
        self._seen_running = False

    # -- status ------------------------------------------------------------------------------
    def _info(self) -> Any | None:
        """The job's details; None when Ray does not know the job (any more)."""
        try:
            return self._client.get_job_info(self.submission_id)
        except RuntimeError as exc:
            if ray_client.does_not_exist(exc):
                return None
            raise ExecutionException(
                f"Reading Ray job {self.submission_id} failed: {ray_client.first_line(str(exc))}"
            ) from None

    def _refresh(self) -> None:
        if time.monotonic() > self._fast_until:
            self._poll_interval = min(self._max_poll, self._poll_interval * 1.5)
        try:
            info = self._info()
            self._failed_polls = 0
        except (ExecutionException, ConnectionError, OSError) as exc:
            # A busy or restarting head must not end the wait; one gone for minutes does.
            self._failed_polls += 1
            if self._failed_polls >= MAX_FAILED_POLLS:
                raise ExecutionException(
                    f"The Ray job API has not answered {self._failed_polls} status reads of job "
                    f"{self.submission_id}: {ray_client.first_line(str(exc))}"
                ) from None
            return
        if info is None:
            self._details = {STATUS_TAG: "MISSING"}
            self._set_terminal(
                RunStatus.FAILED,
                f"Ray job {self.submission_id} no longer exists on the cluster (deleted, or the "
                "head was restarted)",
                lambda: None,
            )
            return
        status = ray_client.run_status(info.status)
        if status in TERMINAL_STATUSES:
            self._end(info, status)
            return
        self._status = status
        if status == RunStatus.RUNNING and not self._seen_running:
            self._seen_running = True
            self._fast_until = time.monotonic() + FAST_WINDOW_SECONDS
            self._poll_interval = min(FIRST_POLL_SECONDS, self._max_poll)
        if status == RunStatus.SCHEDULED:
            self._stop_if_requested()
        elapsed = time.time() - info.start_time / 1000 if info.start_time else 0.0
        if status == RunStatus.RUNNING and self._timeout and elapsed > self._timeout:
            self._log(f"Ray job {self.submission_id} ran out of time; stopping it")
            self._timed_out = True
            self._stop()

    def _end(self, info: Any, status: RunStatus) -> None:
        message = ray_client.first_line(info.message)
        details = {STATUS_TAG: str(info.status)}
        exit_code = getattr(info, "driver_exit_code", None)
        if exit_code is not None:
            details[EXIT_CODE_TAG] = str(exit_code)
        if message:
            details[MESSAGE_TAG] = message
        if info.error_type:
            details[ERROR_TYPE_TAG] = str(info.error_type)
        self._details = details
        reason = None
        if self._timed_out:
            status = RunStatus.FAILED
            reason = f"Ray job {self.submission_id} timed out after {self._timeout:g} s"
        elif status == RunStatus.FAILED:
            reason = f"Ray job {self.submission_id} FAILED: {message or 'no message'}"
        elif status == RunStatus.KILLED:
            reason = f"Ray job {self.submission_id} stopped"
        self._set_terminal(status, reason, self._read_log)

    def _end_tags(self, status: str) -> dict[str, str]:
        return {**super()._end_tags(status), **self._details}

    # -- cancel ------------------------------------------------------------------------------
    def _stop_if_requested(self) -> None:
        """Repeat a cancel asked while the job was PENDING (by any process: it is a tag)."""
        if not self._stop_requested:
            self._stop_requested = STOP_TAG in self._store.get_run(self.run_id).tags
        if self._stop_requested:
            with contextlib.suppress(RuntimeError, ConnectionError, OSError):
                self._client.stop_job(self.submission_id)

    def _stop(self) -> None:
        self._log(f"Stopping Ray job {self.submission_id}")
        started = time.monotonic()
        deadline = started + CANCEL_WAIT_SECONDS
        last = "PENDING"
        while time.monotonic() < deadline:
            info = self._info()
            if info is None:
                self._refresh()  # records it as gone
                return
            status, last = ray_client.run_status(info.status), str(info.status)
            if status in TERMINAL_STATUSES:
                self._end(info, status)
                return
            if status == RunStatus.SCHEDULED and (
                time.monotonic() - started > PENDING_STOP_WAIT_SECONDS
            ):
                self._leave_stop_to_watcher()
                return
            # Again on every poll: a stop sent while PENDING is lost (ray-project/ray#58353).
            self._client.stop_job(self.submission_id)
            time.sleep(min(self._poll_interval, 0.5))
        raise ExecutionException(
            f"Ray job {self.submission_id} is still {last} {CANCEL_WAIT_SECONDS:.0f} s "
            f"after stop_job; check `ray job status {self.submission_id}`"
        )

    def _leave_stop_to_watcher(self) -> None:
        """Ray answers stop_job on a PENDING job with True and does nothing; the job starts
        when resources free up. Record the request and make sure a watcher outlives this
        process to stop the job then; the run becomes KILLED once Ray confirms."""
        from mlproj.backends.remote.watcher import spawn_watcher, watcher_alive, watcher_tags
        from mlproj.tags import TAG_WATCHER_PID

        self._stop_requested = True
        self._store.set_tags(self.run_id, {STOP_TAG: f"{time.time():.3f}"})
        run = self._store.get_run(self.run_id)
        if watcher_alive(run) is not True or run.tags.get(TAG_WATCHER_PID) == str(os.getpid()):
            pid = spawn_watcher(self._store.tracking_uri, self.run_id, "ray")
            self._store.set_tags(self.run_id, watcher_tags(pid))
        self._log(
            f"Ray job {self.submission_id} has not started, and Ray cannot stop a job before it "
            "starts (ray-project/ray#58353): its watcher stops it once it does; the run is "
            "KILLED then"
        )

    # -- output ------------------------------------------------------------------------------
    def _read_log(self) -> str | None:
        try:
            text = self._client.get_job_logs(self.submission_id)
        except (RuntimeError, ConnectionError, OSError) as exc:
            raise ExecutionException(
                f"Could not read the log of Ray job {self.submission_id}: "
                f"{ray_client.first_line(str(exc))}"
            ) from None
        output = ray_client.job_output(text, self.submission_id) if text else None
        if self._tail is not None:
            self._tail.complete(output or "")
        return output

    @contextlib.contextmanager
    def _following_output(self) -> Iterator[None]:
        tail = None
        if self._status not in TERMINAL_STATUSES:
            path = local_log_path(self.run_id)
            with contextlib.suppress(Exception):  # only a convenience: never fail the wait
                self._store.set_tags(
                    self.run_id, {TAG_LOG: str(path), TAG_HOST: socket.gethostname()}
                )
            tail = LogTail(self._client, self.submission_id, path, echo=self._echo_output)
            tail.start()
            self._tail = tail
        try:
            yield
        finally:
            if tail is not None:
                tail.finish()
                self._tail = None


class LogTail(threading.Thread):
    """Follows a Ray job's log (``tail_job_logs``) into a file, and to stdout when asked."""

    def __init__(
        self, job_client: JobSubmissionClient, job_id: str, path: Path, *, echo: bool
    ) -> None:
        super().__init__(name=f"mlproj-ray-tail-{job_id}", daemon=True)
        self._client = job_client
        self._job_id = job_id
        self._path = path
        self._echo = echo
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None

    def finish(self, timeout: float = 5.0) -> None:
        # Ray closes the stream ~3 s after the job ends; wait a little for the tail, then stop.
        self.join(timeout)
        self._stop_now(timeout)

    def _stop_now(self, timeout: float = 5.0) -> None:
        if self.is_alive() and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
            self.join(timeout)

    def complete(self, output: str) -> None:
        """The job has ended and ``output`` is its whole log: stop tailing and add what the
        tail had not received yet, to the same file (``runs logs --follow`` holds it open and
        stops reading once the run's end is recorded, right after this)."""
        self._stop_now()
        try:
            have = self._path.read_text(encoding="utf-8")
        except OSError:
            return
        if output.startswith(have) and len(output) > len(have):
            missing = output[len(have) :]
            with self._path.open("a", encoding="utf-8") as out:
                out.write(missing)
            if self._echo:
                sys.stdout.write(missing)
                sys.stdout.flush()

    def run(self) -> None:
        try:
            self._task = self._loop.create_task(self._follow())
            self._loop.run_until_complete(self._task)
        except BaseException:  # noqa: BLE001, S110 - only for the user's eyes
            pass
        finally:
            self._loop.close()

    async def _follow(self) -> None:
        pending = ""
        with self._path.open("a", encoding="utf-8") as out:
            async for chunk in self._client.tail_job_logs(self._job_id):
                pending += chunk
                complete, _, pending = pending.rpartition("\n")
                if not complete:
                    continue
                text = ray_client.job_output(complete + "\n", self._job_id)
                out.write(text)
                out.flush()
                if self._echo and text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
            if pending:
                text = ray_client.job_output(pending, self._job_id)
                out.write(text)
                if self._echo:
                    sys.stdout.write(text)
                    sys.stdout.flush()


# -- re-attaching ---------------------------------------------------------------------------
def reattach(run: Run, store: TrackingStore) -> RaySubmittedRun | None:
    """The handle of a Ray run from its tags; None before the job was submitted."""
    tags = run.tags
    address, job_id = tags.get(ADDRESS_TAG), tags.get(SUBMISSION_TAG)
    if not address or not job_id:
        return None
    timeout = tags.get(TIMEOUT_TAG)
    return RaySubmittedRun(
        run.run_id,
        store,
        ray_client.client(address),
        job_id,
        poll_interval=float(tags.get(POLL_TAG) or 1.0),
        timeout=float(timeout) if timeout else None,
        stop_requested=STOP_TAG in tags,
    )
