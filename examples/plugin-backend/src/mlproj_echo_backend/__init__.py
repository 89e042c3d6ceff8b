"""Example mlproj backend plugins: ``echo`` and ``detached``.

``echo`` runs nothing. It shows the smallest contract a backend has with mlproj: the core has
already parsed its config (:meth:`EchoBackend.parse_config`), validated the project, opened the
tracking run and logged its parameters; the backend gets a ``SubmitRequest`` carrying the
parsed config, does its work, records what it needs in the run and returns a ``SubmittedRun``.
Here the "work" is keeping the command that would run as tag ``echo.command`` and artifact
``echo/command.txt``.

``detached`` runs the command as a detached process on this machine. It has the shape of any
remote backend (Slurm, Ray, a job queue): submit a job and store its ids in the run's tags,
poll its status, cancel it, read its log - and re-attach from the tags alone, which is what
``mlproj runs cancel`` / ``runs reap`` and the detached watcher of ``--no-wait`` runs use.
``PollingSubmittedRun`` does the rest: the final status is how the job ended (whatever the
project's own MLflow client wrote), the log is kept as ``mlproj/output.log``, a lost log never
keeps the run RUNNING.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlproj.backends.base import Backend, SubmitRequest
from mlproj.backends.config import parse_seconds, refuse_unknown_keys
from mlproj.backends.remote.handle import PollingSubmittedRun
from mlproj.backends.remote.watcher import start_watching
from mlproj.errors import ExecutionException
from mlproj.home import home_subdir
from mlproj.local_run.identity import process_start_ticks
from mlproj.spec.project import Project
from mlproj.statuses import RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run


# -- echo ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EchoConfig:
    prefix: str = ""


class EchoSubmittedRun(SubmittedRun):
    """A run that ended the moment it was submitted."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        return True

    def get_status(self) -> str:
        return RunStatus.FINISHED

    def cancel(self) -> None:
        return None  # nothing is running


class EchoBackend(Backend[EchoConfig]):
    name: ClassVar[str] = "echo"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> EchoConfig:
        # Runs before any tracking run is opened: reject bad config here, naming the key.
        refuse_unknown_keys(raw, ("prefix",), self.name)
        prefix = raw.get("prefix", "")
        if not isinstance(prefix, str):
            raise ExecutionException(f"backend_config: 'prefix' must be a string, got {prefix!r}")
        return EchoConfig(prefix=prefix)

    def submit(self, request: SubmitRequest[EchoConfig]) -> EchoSubmittedRun:
        command = request.backend_config.prefix + request.command
        request.log(f"echo backend: would run {command!r} in {request.project.directory}")
        request.store.set_tag(request.run_id, "echo.command", command)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "command.txt"
            path.write_text(command + "\n", encoding="utf-8")
            request.store.log_artifact(request.run_id, path, "echo")
        request.store.set_terminated(request.run_id, RunStatus.FINISHED)
        return EchoSubmittedRun(request.run_id)

    def reattach(self, run: Run, store: TrackingStore) -> SubmittedRun | None:
        return EchoSubmittedRun(run.run_id)  # an echo run has always ended


# -- detached --------------------------------------------------------------------------------------
JOB_DIR_TAG = "detached.dir"  # the job's folder: its log, exit code and cancel mark
JOB_PID_TAG = "detached.pid"
JOB_START_TAG = "detached.start"
POLL_KEY = "poll-interval"

# Runs the command in a shell of its own, so that even `exit 3` leaves the exit code behind.
_WRAPPER = 'cd "$3" || exit 1; /bin/sh -c "$1"; echo $? > "$2/exit-code"'


@dataclass(frozen=True)
class DetachedConfig:
    poll_interval: float = 1.0


class DetachedSubmittedRun(PollingSubmittedRun):
    """Job ``pid`` writing into ``job_dir``; what a Slurm job id or a Ray job id is elsewhere."""

    def __init__(
        self,
        run_id: str,
        store: TrackingStore,
        job: tuple[Path, int, str],
        poll_interval: float,
    ) -> None:
        super().__init__(run_id, store, poll_interval=poll_interval)
        self.job_dir, self.pid, self.started = job

    def _refresh(self) -> None:
        # Alive is checked before the exit code: a job ending in between is seen next time.
        if _alive(self.pid, self.started):
            self._status = RunStatus.RUNNING
            return
        exit_file = self.job_dir / "exit-code"
        if (self.job_dir / "cancelled").exists():
            self._set_terminal(RunStatus.KILLED, "cancelled", self._read_log)
        elif exit_file.exists():
            code = int(exit_file.read_text().strip() or "1")
            if code == 0:
                self._set_terminal(RunStatus.FINISHED, None, self._read_log)
            else:
                self._set_terminal(RunStatus.FAILED, f"exited with code {code}", self._read_log)
        else:
            self._set_terminal(RunStatus.FAILED, "the job disappeared", self._read_log)

    def _stop(self) -> None:
        (self.job_dir / "cancelled").touch()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(self.pid, self.started) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._set_terminal(RunStatus.KILLED, "cancelled", self._read_log)

    def _read_log(self) -> str | None:
        log = self.job_dir / "output.log"
        return log.read_text(encoding="utf-8", errors="replace") if log.exists() else None


def _alive(pid: int, started: str) -> bool:
    """The job still runs: same pid and start time (a reused pid is another process; a zombie
    waiting for its parent has ended)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # collect it when it is our child
    return process_start_ticks(pid) == started


class DetachedBackend(Backend[DetachedConfig]):
    name: ClassVar[str] = "detached"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> DetachedConfig:
        refuse_unknown_keys(raw, (POLL_KEY,), self.name)
        return DetachedConfig(poll_interval=parse_seconds(raw, POLL_KEY, 1.0) or 1.0)

    def submit(self, request: SubmitRequest[DetachedConfig]) -> DetachedSubmittedRun:
        store, run_id = request.store, request.run_id
        job_dir = home_subdir("detached") / run_id
        job_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **request.extra_env,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_TRACKING_URI": store.tracking_uri,
            "MLFLOW_EXPERIMENT_ID": request.experiment_id,
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }
        log = str(job_dir / "output.log")
        argv = ["/bin/sh", "-c", _WRAPPER, "mlproj-job", request.command, str(job_dir)]
        pid = os.posix_spawn(
            "/bin/sh",
            [*argv, str(request.project.directory)],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # its own process group: cancel stops all of it
        )
        started = process_start_ticks(pid) or ""
        # The ids that find the job again, from any process: the whole of re-attaching.
        store.set_tags(
            run_id, {JOB_DIR_TAG: str(job_dir), JOB_PID_TAG: str(pid), JOB_START_TAG: started}
        )
        request.log(f"detached backend: job {pid} runs {request.command!r}")
        run = DetachedSubmittedRun(
            run_id, store, (job_dir, pid, started), request.backend_config.poll_interval
        )
        run.watcher_pid = start_watching(
            store, run_id, synchronous=request.synchronous, backend=self.name
        )
        return run

    def reattach(self, run: Run, store: TrackingStore) -> DetachedSubmittedRun | None:
        job_dir, pid = run.tags.get(JOB_DIR_TAG), run.tags.get(JOB_PID_TAG)
        if not job_dir or not pid:
            return None  # no job started yet (or its start failed)
        job = (Path(job_dir), int(pid), run.tags.get(JOB_START_TAG, ""))
        return DetachedSubmittedRun(run.run_id, store, job, poll_interval=0.2)
