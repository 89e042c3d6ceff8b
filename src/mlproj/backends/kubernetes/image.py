"""Build the project image for a cluster and push it to the ``repository-uri`` registry.

A pod cannot see the submitting machine's folder, so the image always carries the project code
(``FROM <docker_env.image>``, code in ``/mlflow/projects/code``). Building, reuse of an
unchanged image and pushing are the Docker environment's (:mod:`mlproj.docker.images`);
this module only chooses the inputs and pins the result by digest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.spec.project import Project


@dataclass(frozen=True)
class PushedImage:
    uri: str  # repository:tag
    image_id: str  # local image id, sha256:...
    digest: str  # registry digest, sha256:...

    @property
    def pinned(self) -> str:
        """The reference a pod pulls: the repository pinned to the pushed digest."""
        return f"{self.uri.rsplit(':', 1)[0]}@{self.digest}"


def build_and_push(
    project: Project,
    repository: str,
    *,
    auth: Mapping[str, str] | None,
    log: Callable[[str], None],
    tracking_uri: str | None = None,
) -> PushedImage:
    from mlproj.docker.images import build_project_image, push_image

    if project.docker_env is None:
        raise ExecutionException(f"{project.describe()}: no docker_env to build an image from")
    image = build_project_image(
        project,
        repository=repository,
        base_image=project.docker_env.image,
        log=log,
        auth=auth,
        exclude=_local_store(project.directory, tracking_uri),
    )
    digest = push_image(image.uri, auth, log=log)
    return PushedImage(uri=image.uri, image_id=image.image_id, digest=digest)


def _local_store(directory: Path, tracking_uri: str | None) -> list[Path]:
    """A file tracking store inside the project folder is not part of the code."""
    if not tracking_uri:
        return []
    from mlproj.locations import local_store_root

    root = local_store_root(tracking_uri)
    if root is not None and root.is_relative_to(directory):
        return [root]
    return []
