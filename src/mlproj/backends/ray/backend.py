"""The ``ray`` backend: a run is one Ray job, submitted through the Ray Jobs API.

Steps of a submission, in order: the runtime_env (the project folder as ``working_dir``, the
run's MLflow variables and tracking credentials as ``env_vars`` - the client's environment
does not reach a Ray job - and the project's python_env / conda_env as Ray's ``uv`` / ``pip`` /
``conda`` field, or nothing with ``--env-manager local``: the cluster's Python) -> ``submit_job``
under a submission id derived from the run id -> the address and submission id recorded in the
run's tags -> a :class:`RaySubmittedRun` (a detached watcher for an asynchronous run).
"""

from __future__ import annotations

import importlib.util
import shlex
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from mlproj.backends.base import Backend, SubmitRequest
from mlproj.backends.ray import client as ray_client
from mlproj.backends.ray.config import RayConfig, parse_config
from mlproj.backends.ray.run import (
    ADDRESS_TAG,
    POLL_TAG,
    SUBMISSION_TAG,
    TIMEOUT_TAG,
    RaySubmittedRun,
    reattach,
    submission_id,
)
from mlproj.backends.remote.runenv import run_variables
from mlproj.backends.remote.watcher import start_watching
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

RUN_ID_METADATA = "mlproj_run_id"


class RayBackend(Backend[RayConfig]):
    name: ClassVar[str] = "ray"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> RayConfig:
        return parse_config(raw)

    def validate(self, project: Project, config: RayConfig) -> None:
        if project.docker_env is not None:
            raise ExecutionException(
                f"{project.describe()}: docker_env projects cannot run on the ray backend (a Ray "
                "job runs in the cluster's own containers); give the project a python_env or "
                "conda_env, or use --env-manager local for the cluster's Python"
            )
        if importlib.util.find_spec("ray") is None:
            raise ExecutionException(
                "The ray backend needs Ray's job client: pip install 'mlproj[ray]'"
            )

    def reattach(self, run: Run, store: TrackingStore) -> RaySubmittedRun | None:
        return reattach(run, store)

    def submit(self, request: SubmitRequest[RayConfig]) -> RaySubmittedRun:
        config, store, run_id = request.backend_config, request.store, request.run_id
        runtime_env = _runtime_env(request)
        job_id = submission_id(run_id)
        job_client = ray_client.client(config.address)
        options: dict[str, Any] = {
            "entrypoint_num_cpus": config.entrypoint_num_cpus,
            "entrypoint_num_gpus": config.entrypoint_num_gpus,
            "entrypoint_memory": config.entrypoint_memory,
            "entrypoint_resources": config.entrypoint_resources,
        }
        try:
            job_client.submit_job(
                # Ray runs the entrypoint with /bin/sh; the command is written for bash.
                entrypoint=f"bash -c {shlex.quote(request.command)}",
                submission_id=job_id,
                runtime_env=runtime_env,
                metadata={**config.metadata, RUN_ID_METADATA: run_id},
                **{k: v for k, v in options.items() if v is not None},
            )
            request.log(f"Submitted Ray job {job_id} to {config.address}")
        except RuntimeError as exc:
            if not ray_client.already_exists(exc):
                raise ExecutionException(
                    f"Ray refused job {job_id}: {_refusal(str(exc))}"
                ) from None
            # A resubmission of the same run (after a crash): the job is ours, keep it.
            request.log(f"Ray job {job_id} already exists; following it")
        except (ConnectionError, OSError) as exc:
            raise ExecutionException(
                f"Cannot reach the Ray job API at {config.address}: "
                f"{ray_client.first_line(str(exc))}"
            ) from None
        store.set_tags(
            run_id,
            {
                ADDRESS_TAG: config.address,
                SUBMISSION_TAG: job_id,
                POLL_TAG: str(config.poll_interval),
                **({TIMEOUT_TAG: str(config.timeout)} if config.timeout else {}),
            },
        )
        run = RaySubmittedRun(
            run_id,
            store,
            job_client,
            job_id,
            poll_interval=config.poll_interval,
            timeout=config.timeout,
            log=request.log,
            echo_output=request.synchronous,
        )
        run.watcher_pid = start_watching(
            store, run_id, synchronous=request.synchronous, backend=self.name
        )
        return run


def _refusal(text: str) -> str:
    """The useful line of a Ray server error (its text can embed a whole traceback)."""
    for line in reversed(text.strip().splitlines()):
        if line.strip() and not line.startswith(" "):
            return line.strip()
    return ray_client.first_line(text)


def _runtime_env(request: SubmitRequest[RayConfig]) -> dict[str, Any]:
    config, project = request.backend_config, request.project
    env = dict(config.runtime_env)
    env["working_dir"] = str(project.directory)
    excludes = [*env.get("excludes", []), *config.excludes]
    if excludes:
        env["excludes"] = excludes
    env["env_vars"] = {
        **env.get("env_vars", {}),
        **request.extra_env,
        **run_variables(
            tracking_uri=request.tracking_uri,
            run_id=request.run_id,
            experiment_id=request.experiment_id,
        ),
    }
    env.update(runtime_packages(project, request.env_manager.name, request.log))
    return env


def runtime_packages(project: Project, manager: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The project's environment as Ray's runtime_env field for env manager ``manager``:
    uv -> ``uv``, virtualenv -> ``pip``, conda -> ``conda`` (needs conda on the cluster), local
    -> nothing (the cluster's Python). Ray builds it on the cluster's Python, so a ``python:``
    version in the spec cannot be honoured (said in a warning)."""
    from mlproj.envs.python.condaspec import convert_conda_file
    from mlproj.envs.python.pyspec import load_python_env

    if manager == "local" or project.env_file is None:
        return {}
    if project.env_type == "conda_env" and manager == "conda":
        import yaml

        return {"conda": yaml.safe_load(project.env_file.read_text(encoding="utf-8"))}
    if project.env_type == "conda_env":
        converted = convert_conda_file(project.env_file)
        spec = converted.spec
        if converted.dropped:
            log(
                f"Warning: {project.env_file}: dropped conda-only dependencies: "
                f"{', '.join(converted.dropped)}"
            )
    else:
        spec = load_python_env(project.env_file)
    if spec.python:
        log(
            f"Warning: {project.env_file} asks for Python {spec.python}; a Ray job's "
            "environment is built on the cluster's Python"
        )
    # Conda packages with a PyPI name (optional for the local uv env, tried one by one) are
    # needed all the same: Ray installs the list in one go.
    requirements = [*spec.build_dependencies, *spec.dependencies, *spec.optional_dependencies]
    if not requirements:
        return {}
    return {"uv" if manager == "uv" else "pip": requirements}
