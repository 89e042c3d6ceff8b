"""The ``slurm`` backend: a run is one Slurm batch job.

Steps of a submission, in order: the environment is built on this host into ``MLPROJ_HOME``
(Slurm sites share a filesystem with their compute nodes), or left to the job with
``env_build: "job"``, or for a docker_env project replaced by an Apptainer/Singularity
container -> the batch script (modules, setup lines, the run's MLflow variables and tracking
credentials, the command) -> ``sbatch --parsable`` -> the job id and output file recorded in the
run's tags -> a :class:`SlurmSubmittedRun` (a detached watcher for an asynchronous run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mlproj.backends.base import Backend, SubmitRequest
from mlproj.backends.remote.runenv import run_variables
from mlproj.backends.remote.watcher import start_watching
from mlproj.backends.slurm import commands
from mlproj.backends.slurm.config import SlurmConfig, parse_config
from mlproj.backends.slurm.run import (
    CLUSTER_TAG,
    JOB_ID_TAG,
    OUTPUT_TAG,
    POLL_TAG,
    SUBMITTED_TAG,
    SlurmSubmittedRun,
    end_marker_path,
    reattach,
)
from mlproj.backends.slurm.script import environment_changes, job_script
from mlproj.envs.base import EnvRequest
from mlproj.errors import ExecutionException
from mlproj.home import home_subdir
from mlproj.spec.project import DockerEnv, Project
from mlproj.tags import MLFLOW_ENV, TAG_LOG
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

CONTAINER_RUNTIMES = ("apptainer", "singularity")


def container_runtime() -> str | None:
    for name in CONTAINER_RUNTIMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class SlurmBackend(Backend[SlurmConfig]):
    name: ClassVar[str] = "slurm"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> SlurmConfig:
        return parse_config(raw)

    def validate(self, project: Project, config: SlurmConfig) -> None:
        commands.check_installed()
        if project.docker_env is not None and container_runtime() is None:
            raise ExecutionException(
                f"{project.describe()}: docker_env projects run on Slurm in Apptainer or "
                "Singularity, and neither `apptainer` nor `singularity` is on PATH here; "
                "install one (the compute nodes need it too), or give the project a "
                "python_env / conda_env"
            )

    def reattach(self, run: Run, store: TrackingStore) -> SlurmSubmittedRun | None:
        return reattach(run, store)

    def submit(self, request: SubmitRequest[SlurmConfig]) -> SlurmSubmittedRun:
        config, store, run_id = request.backend_config, request.store, request.run_id
        log_dir = config.log_dir or home_subdir("slurm") / "logs"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutionException(
                f"backend_config: 'log_dir' {log_dir} cannot be created: {exc.strerror or exc}"
            ) from None
        output = log_dir / f"{run_id}.out"
        end_marker = end_marker_path(output)
        variables = run_variables(
            tracking_uri=request.tracking_uri,
            run_id=run_id,
            experiment_id=request.experiment_id,
        )
        exports, unset, cwd, argv = _launch(request, variables, log_dir)
        script = job_script(
            run_id=run_id,
            config=config,
            exports=exports,
            unset=unset,
            cwd=cwd,
            argv=argv,
            end_marker=end_marker,
        )
        options = [
            f"--job-name={_job_name(request.project, run_id)}",
            f"--output={output}",
            f"--chdir={cwd}",
            *config.options,
        ]
        # There from the start, so `mlproj runs logs --follow` can wait on it before the job
        # runs (Slurm truncates it when the job starts: still the same file).
        output.touch()
        end_marker.unlink(missing_ok=True)  # a resubmission of the run: not its end yet
        submitted_at = time.time()
        job_id, cluster = commands.sbatch(script, options)
        store.set_tags(
            run_id,
            {
                JOB_ID_TAG: job_id,
                **({CLUSTER_TAG: cluster} if cluster else {}),
                OUTPUT_TAG: str(output),
                SUBMITTED_TAG: f"{submitted_at:.3f}",
                POLL_TAG: str(config.poll_interval),
                TAG_LOG: str(output),  # `mlproj runs logs --follow` reads it while it runs
            },
        )
        request.log(f"Submitted Slurm job {job_id} (output: {output})")
        run = SlurmSubmittedRun(
            run_id,
            store,
            job_id,
            output=output,
            submitted_at=submitted_at,
            poll_interval=config.poll_interval,
            log=request.log,
            echo_output=request.synchronous,
        )
        run.watcher_pid = start_watching(
            store, run_id, synchronous=request.synchronous, backend=self.name
        )
        return run


def _job_name(project: Project, run_id: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", project.name or "run").strip("-") or "run"
    return f"mlproj-{base[:40]}-{run_id[:8]}"


def _launch(
    request: SubmitRequest[SlurmConfig], variables: dict[str, str], log_dir: Path
) -> tuple[dict[str, str], list[str], Path, Sequence[str]]:
    """(exports, unset, working folder, argv) of the job's command."""
    project = request.project
    if project.docker_env is not None:
        return _container_launch(request, project.docker_env, variables)
    config = request.backend_config
    if config.env_build == "job":
        spec = log_dir / f"{request.run_id}.env.json"
        spec.write_text(
            json.dumps(
                {
                    "project_dir": str(project.directory),
                    "env_manager": request.env_manager.name,
                    "command": request.command,
                    "run_id": request.run_id,
                    "experiment_id": request.experiment_id,
                    "tracking_uri": request.tracking_uri,
                    "artifact_uri": request.artifact_uri,
                }
            ),
            encoding="utf-8",
        )
        python = config.mlproj_python or sys.executable
        argv = [python, "-m", "mlproj.backends.slurm.in_job", str(spec)]
        return variables, [], project.directory, argv
    store, run_id = request.store, request.run_id
    plan = request.env_manager.prepare(
        EnvRequest(
            project=project,
            command=request.command,
            env={**os.environ, **request.extra_env, **variables},
            run_id=run_id,
            experiment_id=request.experiment_id,
            tracking_uri=request.tracking_uri,
            artifact_uri=request.artifact_uri or store.get_run(run_id).info.artifact_uri,
            local_paths=request.params.local_paths,
            log=request.log,
            set_tags=lambda tags: store.set_tags(run_id, tags),
        )
    )
    exports, unset = environment_changes(plan.env, os.environ, variables)
    return exports, unset, plan.cwd, plan.argv


def _container_launch(
    request: SubmitRequest[SlurmConfig], docker_env: DockerEnv, variables: dict[str, str]
) -> tuple[dict[str, str], list[str], Path, Sequence[str]]:
    """A docker_env project in Apptainer/Singularity, which pulls the image itself."""
    runtime = container_runtime()
    if runtime is None:  # checked in validate; the PATH may have changed since
        raise ExecutionException("neither apptainer nor singularity is on PATH")
    exports = dict(variables)
    for item in docker_env.environment:
        if isinstance(item, str):
            if item in os.environ:
                exports[item] = os.environ[item]
        else:
            exports[item[0]] = item[1]
    project_dir = str(request.project.directory)
    binds = [project_dir, *docker_env.volumes]
    argv = [runtime, "exec"]
    for bind in binds:
        argv += ["--bind", bind]
    image = docker_env.image if "://" in docker_env.image else f"docker://{docker_env.image}"
    argv += ["--pwd", project_dir, image, "bash", "-c", request.command]
    request.store.set_tags(request.run_id, {MLFLOW_ENV: "docker"})
    return exports, [], request.project.directory, argv
