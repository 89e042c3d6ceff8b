"""The environment manager interface: prepare an environment, say how to launch in it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from mlproj.records import field, record
from mlproj.spec.project import Project


def _ignore(_: str) -> None:
    return None


@record
class EnvRequest:
    """Everything a manager may need to prepare one run's environment."""

    project: Project
    command: str  # rendered entry-point command; every parameter already shell-quoted
    env: dict[str, str]  # the child's environment: os.environ + MLFLOW_* run variables
    run_id: str
    experiment_id: str
    tracking_uri: str  # absolute, as the host sees it
    artifact_uri: str
    local_paths: Mapping[str, Path] = field(default_factory=dict)  # path params (docker mounts)
    docker_args: Mapping[str, str | bool] = field(default_factory=dict)
    build_image: bool = False
    docker_auth: Mapping[str, str] | None = None
    log: Callable[[str], None] = _ignore  # progress lines for the user (stderr)
    set_tags: Callable[[Mapping[str, str]], None] = lambda _tags: None  # extra run tags


@record
class LaunchPlan:
    """How to start the entry point: an argv list, never a joined shell string."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    # Commands run (best effort) when the run is cancelled, after the process group is
    # signalled: e.g. ``docker rm -f <container>``.
    on_cancel: list[list[str]] = field(default_factory=list)


class EnvironmentManager(ABC):
    """One way of giving an entry point its dependencies (local, uv, virtualenv, conda, docker)."""

    name: ClassVar[str]
    #: Value of tag ``mlflow.project.env``; None means no tag (MLflow sets none for local).
    tag_value: ClassVar[str | None]

    def validate(self, project: Project) -> None:  # noqa: B027 - optional hook
        """Cheap checks run before the tracking run is opened (tool installed, spec usable).

        Raise ExecutionException with a message that says what to do.
        """

    @abstractmethod
    def prepare(self, request: EnvRequest) -> LaunchPlan:
        """Build or reuse the environment, then return how to launch the command in it."""
