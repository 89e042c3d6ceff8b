"""Build the project image for a cluster and push it to the ``repository-uri`` registry.

A pod cannot see the submitting machine's folder, so the image always carries the project code:
``FROM <docker_env.image>``, code copied to ``/mlflow/projects/code`` (the working directory, as
in MLflow). The tag is a hash of the build context, so unchanged code reuses the image that is
already there instead of building again.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlproj.backends.archive import project_archive, sha256_hex
from mlproj.errors import ExecutionException
from mlproj.spec import Project

if TYPE_CHECKING:
    import docker

CODE_DIR = "/mlflow/projects/code/"
_CONTEXT_DIR = "mlproj-project"
_DOCKERFILE = "Dockerfile.mlproj"
PUSH_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class PushedImage:
    uri: str  # repository:tag
    image_id: str  # local image id, sha256:...
    digest: str  # registry digest, sha256:...

    @property
    def pinned(self) -> str:
        """The reference a pod pulls: the repository pinned to the pushed digest."""
        return f"{self.uri.rsplit(':', 1)[0]}@{self.digest}"


def docker_client() -> docker.DockerClient:
    try:
        import docker
    except ImportError as exc:
        raise ExecutionException(
            "The kubernetes backend needs the docker package: pip install 'mlproj[kubernetes]'"
        ) from exc
    try:
        client = docker.from_env(timeout=PUSH_TIMEOUT_SECONDS)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ExecutionException(
            "The kubernetes backend builds the project image with Docker, but the Docker daemon "
            f"is not reachable ({type(exc).__name__}); start Docker or set DOCKER_HOST"
        ) from exc
    return client


def build_context(project: Project) -> bytes:
    assert project.docker_env is not None
    dockerfile = (
        f"FROM {project.docker_env.image}\nCOPY {_CONTEXT_DIR}/ {CODE_DIR}\nWORKDIR {CODE_DIR}\n"
    ).encode()
    return project_archive(project.directory, _CONTEXT_DIR, extra_files={_DOCKERFILE: dockerfile})


def build_image(
    client: docker.DockerClient,
    project: Project,
    repository: str,
    *,
    rebuild: bool,
    log: Callable[[str], None],
) -> tuple[str, str]:
    """Build (or reuse) ``repository:<context hash>``; return (uri, image id)."""
    import docker

    context = build_context(project)
    uri = f"{repository}:{sha256_hex(context)[:12]}"
    if not rebuild:
        try:
            image = client.images.get(uri)
        except docker.errors.ImageNotFound:
            pass
        else:
            log(f"Reusing image {uri} (same project files and base image)")
            return uri, str(image.id)
    log(f"Building image {uri} from {project.docker_env.image if project.docker_env else '?'}")
    try:
        image, _logs = client.images.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            encoding="gzip",
            dockerfile=_DOCKERFILE,
            tag=uri,
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", "")) for chunk in list(exc.build_log)[-10:])
        raise ExecutionException(
            f"Building image {uri} failed: {exc.msg}\n{tail}".rstrip()
        ) from exc
    except docker.errors.APIError as exc:
        raise ExecutionException(f"Building image {uri} failed: {exc.explanation or exc}") from exc
    return uri, str(image.id)


def push_image(
    client: docker.DockerClient,
    uri: str,
    *,
    auth: Mapping[str, str] | None = None,
    log: Callable[[str], None],
) -> str:
    """Push ``uri`` (repository:tag) and return the registry digest."""
    import docker
    import requests

    repository, tag = uri.rsplit(":", 1)
    log(f"Pushing {uri}")
    digest: str | None = None
    try:
        for line in client.images.push(
            repository, tag=tag, stream=True, decode=True, auth_config=_auth_config(auth)
        ):
            if not isinstance(line, dict):
                continue
            if line.get("error"):
                raise ExecutionException(
                    f"Error while pushing {uri} to the docker registry: {line['error']}"
                )
            aux: Any = line.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
    except (docker.errors.APIError, requests.RequestException) as exc:
        detail = getattr(exc, "explanation", None) or str(exc)
        raise ExecutionException(
            f"Error while pushing {uri} to the docker registry: {detail}"
        ) from exc
    if digest is None:
        raise ExecutionException(f"Pushing {uri} returned no image digest; check the registry")
    return digest


def _auth_config(auth: Mapping[str, str] | None) -> dict[str, str] | None:
    if not auth:
        return None
    return {k: v for k, v in auth.items() if k in ("username", "password", "email", "registry")}


def build_and_push(
    project: Project,
    repository: str,
    *,
    rebuild: bool,
    auth: Mapping[str, str] | None,
    log: Callable[[str], None],
) -> PushedImage:
    client = docker_client()
    try:
        uri, image_id = build_image(client, project, repository, rebuild=rebuild, log=log)
        digest = push_image(client, uri, auth=auth, log=log)
    finally:
        client.close()
    return PushedImage(uri=uri, image_id=image_id, digest=digest)
