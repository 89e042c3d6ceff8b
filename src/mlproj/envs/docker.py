"""The ``docker`` manager: run the entry point in a container of the project's docker_env image.

Steps of ``prepare``: the image (base image as is, or a project image built FROM it and reused
while the project is unchanged) -> the shell inside it -> mounts (project, tracking store,
artifacts, path parameters, user volumes) -> environment -> the ``docker run`` argv.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from mlproj.docker.cli import DockerCli, docker_executable, logged_in
from mlproj.docker.images import CODE_DIR, ImageRef, build_or_reuse, resolve_image
from mlproj.docker.variables import check_host_variables, container_variables
from mlproj.envs.base import EnvironmentManager, EnvRequest, LaunchPlan
from mlproj.envs.docker_run import (
    ContainerSpec,
    Mount,
    add_artifacts,
    add_path_parameters,
    add_tracking,
    container_name,
    docker_arg_options,
    image_shell,
)
from mlproj.errors import ExecutionException
from mlproj.locations import local_store_root
from mlproj.spec.project import DockerEnv, Project
from mlproj.tags import (
    LABEL_RUN_ID,
    MLFLOW_DOCKER_IMAGE_ID,
    MLFLOW_DOCKER_IMAGE_URI,
    TAG_DOCKER_CONTAINER,
)

_NETWORK_KEYS = ("network", "net")


class DockerManager(EnvironmentManager):
    name: ClassVar[str] = "docker"
    tag_value: ClassVar[str | None] = "docker"

    def validate(self, project: Project) -> None:
        docker_env = _docker_env(project)
        check_host_variables(docker_env.environment, os.environ)
        docker_executable()
        DockerCli().check_daemon()

    def prepare(self, request: EnvRequest) -> LaunchPlan:
        project = request.project
        docker_env = _docker_env(project)
        # User mistakes first, before any pull or build.
        user_env = container_variables(docker_env.environment, request.env)
        options = docker_arg_options(request.docker_args)
        cli = DockerCli(request.env)
        image, shell_image_id = self._image(cli, request, docker_env)
        request.set_tags(
            {MLFLOW_DOCKER_IMAGE_URI: image.uri, MLFLOW_DOCKER_IMAGE_ID: image.image_id}
        )

        name = str(request.docker_args.get("name") or "")
        if name:
            options = _without_option(options, "--name")
        else:
            name = container_name(request.run_id, secrets.token_hex(3))
        spec = ContainerSpec(
            name=name,
            image=image.uri,
            shell=image_shell(cli, shell_image_id),
            command=request.command,
            labels={LABEL_RUN_ID: request.run_id},
            init="init" not in request.docker_args,  # -A init=false turns it off
            extra_args=[*(a for v in docker_env.volumes for a in ("-v", v)), *options],
        )
        if not request.build_image:
            # Deliberate difference from MLflow (which mounts nothing): the code is the project
            # folder itself, so a base image with only the dependencies is enough.
            spec.add_mount(Mount(project.directory, CODE_DIR))
        container_uri, wants_host_network = add_tracking(spec, request.tracking_uri, request.env)
        add_artifacts(spec, request.artifact_uri, request.env)
        add_path_parameters(spec, request.local_paths)
        self._network(spec, request, container_uri, wants_host_network)
        spec.env.update(
            {
                "MLFLOW_RUN_ID": request.run_id,
                "MLFLOW_EXPERIMENT_ID": request.experiment_id,
                "MLFLOW_TRACKING_URI": container_uri,
                "MLFLOW_ALLOW_FILE_STORE": "true",
                **user_env,
            }
        )
        request.set_tags({TAG_DOCKER_CONTAINER: name})
        return LaunchPlan(
            argv=spec.argv(cli.executable),
            env=spec.client_env(request.env),
            cwd=project.directory,
            on_cancel=[[cli.executable, "rm", "-f", name]],
        )

    @staticmethod
    def _network(
        spec: ContainerSpec, request: EnvRequest, tracking_uri: str, on_loopback: bool
    ) -> None:
        """The host's loopback is the container's loopback only with the host network."""
        if not on_loopback:
            return
        if any(key in request.docker_args for key in _NETWORK_KEYS):
            request.log(
                f"Warning: tracking server {tracking_uri} is on the host's loopback; with the "
                "network from docker_args the container may not reach it"
            )
        else:
            request.log(f"Tracking server {tracking_uri} is on loopback: using --network host")
            spec.network = "host"

    def _image(
        self, cli: DockerCli, request: EnvRequest, docker_env: DockerEnv
    ) -> tuple[ImageRef, str]:
        """The image to run and the id of the image whose shell decides bash vs sh."""
        if not request.build_image:
            with logged_in(cli, request.docker_auth, docker_env.image):
                image = resolve_image(cli, docker_env.image, request.log)
            return image, image.image_id
        # A tracking store or artifact folder inside the project must not be baked in.
        exclude = [
            p
            for p in (local_store_root(request.tracking_uri), _local(request.artifact_uri))
            if p is not None
        ]
        image, base = build_or_reuse(
            cli,
            request.project,
            repository=None,
            base_image=docker_env.image,
            log=request.log,
            auth=request.docker_auth,
            exclude=exclude,
        )
        return image, base.image_id  # COPY does not change /bin: the base's shell is the same


def _docker_env(project: Project) -> DockerEnv:
    docker_env = project.docker_env
    if docker_env is None or not docker_env.image:
        where = project.spec_path or project.directory / "MLproject"
        raise ExecutionException(
            f"{where}: docker_env.image is not set; name the Docker image to run in, e.g. "
            "docker_env: {image: python:3.11}"
        )
    return docker_env


def _local(uri: str) -> Path | None:
    try:
        return local_store_root(uri) if uri else None
    except ExecutionException:
        return None


def _without_option(options: list[str], flag: str) -> list[str]:
    out: list[str] = []
    skip = False
    for item in options:
        if skip:
            skip = False
            continue
        if item == flag:
            skip = True
            continue
        out.append(item)
    return out


def remove_run_containers(run_id: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Force-remove every container of a run (found by its ``mlproj.run_id`` label) and return
    their names: for ``runs cancel`` / ``runs reap`` when the supervising process is gone.
    Returns [] when Docker is not installed or not reachable."""
    try:
        cli = DockerCli(env)
    except ExecutionException:
        return []
    found = cli.run(
        ["ps", "-a", "--filter", f"label=mlproj.run_id={run_id}", "--format", "{{.Names}}"],
        timeout=60,
    )
    names = found.stdout.split() if found.returncode == 0 else []
    if names:
        cli.run(["rm", "-f", *names], timeout=120)
    return names
