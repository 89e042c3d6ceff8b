"""The local backend: prepare the environment, then run here under a supervisor."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mlproj.backends.base import Backend, SubmitRequest
from mlproj.backends.config import TIMEOUT_KEY, parse_seconds, refuse_unknown_keys
from mlproj.envs.base import EnvRequest
from mlproj.errors import ExecutionException
from mlproj.home import home_subdir
from mlproj.local_run.handle import LocalSubmittedRun
from mlproj.local_run.identity import (
    boottime_ns,
    child_tags,
    identity_tags,
    spawned_start_ticks,
)
from mlproj.local_run.supervisor import Job, Supervisor, raise_held, signals_deferred
from mlproj.records import record
from mlproj.settings import (
    BUILD_STEP_TIMEOUT,
    KILL_GRACE,
    OUTPUT_LINGER,
    PYTHON_INSTALL_TIMEOUT,
    kill_grace,
)
from mlproj.shell import show_command
from mlproj.spec.project import Project
from mlproj.submitted import SubmittedRun
from mlproj.tags import LOG_ARTIFACT_DIR, LOG_ARTIFACT_NAME, TAG_LOG
from mlproj.tracking.base import TrackingStore


def run_environment(
    store: TrackingStore,
    run_id: str,
    experiment_id: str,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment: ours (or ``base``) plus the variables that bind MLflow clients
    to the run."""
    env = {**(os.environ if base is None else base), **(extra or {})}
    env["MLFLOW_RUN_ID"] = run_id
    env["MLFLOW_TRACKING_URI"] = store.tracking_uri
    env["MLFLOW_EXPERIMENT_ID"] = experiment_id
    if store.tracking_uri.startswith("file:"):
        # MLflow >= 3.13 refuses a file store unless told it is wanted.
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return env


def log_location(store: TrackingStore, run_id: str) -> tuple[Path, bool]:
    """Where the run's output log is written, and whether it must be uploaded at the end."""
    artifacts = store.local_artifact_dir(run_id)
    if artifacts is not None:
        return artifacts / LOG_ARTIFACT_DIR / LOG_ARTIFACT_NAME, False
    # Named like the artifact it becomes: log_artifact keeps the file name.
    return home_subdir("logs") / run_id / LOG_ARTIFACT_NAME, True


@record(frozen=True)
class LocalConfig:
    timeout: float | None = None  # seconds; the command is stopped (and FAILED) after it


def running_message(run_id: str, command: str | Sequence[str]) -> str:
    """The command as the user would type it: an argv list as ``shlex.join`` writes it, a
    shell command as written; a multi-line one on lines of its own, indented, not as a repr."""
    text = show_command(command).strip()
    if "\n" not in text:
        return f"run {run_id}: running {text}"
    indented = "\n".join(f"    {line}" for line in text.splitlines())
    return f"run {run_id}: running:\n{indented}"


class LocalBackend(Backend[LocalConfig]):
    name: ClassVar[str] = "local"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> LocalConfig:
        refuse_unknown_keys(raw, (TIMEOUT_KEY,), self.name)
        return LocalConfig(timeout=parse_seconds(raw, TIMEOUT_KEY))

    def validate(self, project: Project, config: LocalConfig) -> None:
        # A bad setting is refused before the run opens, not when it is first needed.
        for setting in (KILL_GRACE, OUTPUT_LINGER, BUILD_STEP_TIMEOUT, PYTHON_INSTALL_TIMEOUT):
            setting.get()

    def submit(self, request: SubmitRequest[LocalConfig]) -> SubmittedRun:
        store, run_id = request.store, request.run_id
        log_path, upload_log = log_location(store, run_id)
        plan = request.env_manager.prepare(
            EnvRequest(
                project=request.project,
                command=request.command,
                env=run_environment(
                    store, run_id, request.experiment_id, request.extra_env, request.base_env
                ),
                run_id=run_id,
                experiment_id=request.experiment_id,
                tracking_uri=store.tracking_uri,
                artifact_uri=request.artifact_uri or store.get_run(run_id).info.artifact_uri,
                local_paths=request.params.local_paths,
                docker_args=request.docker_args,
                build_image=request.build_image,
                docker_auth=request.docker_auth,
                log=request.log,
                set_tags=lambda tags: store.set_tags(run_id, tags),
            )
        )
        job = Job(
            run_id=run_id,
            tracking_uri=store.tracking_uri,
            plan=plan,
            log_path=log_path,
            timeout=request.backend_config.timeout,
            upload_log=upload_log,
            deferred_params=request.params.deferred(),
        )
        request.log(running_message(run_id, request.command))
        if request.synchronous:
            # The identity tags of this process were written when the run was created.
            supervisor = Supervisor(job, store, caller_reads=request.caller_reads)
            # Signals wait until the command's identity is recorded (or it is stopped):
            # nothing unwinds between the start and the record.
            with signals_deferred() as pending:
                supervisor.start()
                runner = supervisor.runner
                try:
                    identity = child_tags(runner.pid, runner.start_ticks())
                    supervisor.store.set_tags(run_id, {TAG_LOG: str(log_path), **identity})
                except BaseException:
                    # A store error before the wait begins: the command is running already
                    # and must not outlive its run.
                    supervisor.cancel()
                    raise
            if pending:
                supervisor.cancel()
                raise_held(pending)
            return LocalSubmittedRun(run_id, supervisor=supervisor)
        return LocalSubmittedRun(run_id, process=_spawn_supervisor(job, store), store=store)


def _spawn_supervisor(job: Job, store: TrackingStore) -> subprocess.Popen[bytes]:
    # The supervisor's own errors (not the run's output) go to a file, to debug it if it dies.
    errors = home_subdir("logs") / job.run_id / "supervisor.log"
    errors.parent.mkdir(exist_ok=True)
    with errors.open("ab") as stderr:
        before = boottime_ns()
        process = subprocess.Popen(
            [sys.executable, "-m", "mlproj.local_run.supervisor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
        started = spawned_start_ticks(process.pid, before, boottime_ns())
    try:
        assert process.stdin is not None
        process.stdin.write(job.to_json().encode())
        process.stdin.close()
        identity = identity_tags(process.pid, started)
        store.set_tags(job.run_id, {**identity, TAG_LOG: str(job.log_path)})
    except BaseException:
        # Ctrl-C or a store error before the run knows its supervisor: the run is about to be
        # marked failed, so its supervisor (and the command it may have started) must stop;
        # it records how, before the caller records why.
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired, ExecutionException):
            process.wait(timeout=kill_grace() + 30)
        raise
    return process
