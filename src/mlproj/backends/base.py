"""The backend interface: submit a prepared run somewhere, get a SubmittedRun back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlproj.envs.base import EnvironmentManager
from mlproj.sources.base import FetchedProject
from mlproj.spec.params import ResolvedParameters
from mlproj.spec.project import EntryPoint, Project
from mlproj.submitted import SubmittedRun
from mlproj.tracking.base import TrackingStore


def _ignore(_: str) -> None:
    return None


@dataclass
class SubmitRequest:
    """A run that mlproj has validated and opened in the tracking store, ready to start."""

    project: Project
    fetched: FetchedProject
    entry_point: EntryPoint
    params: ResolvedParameters
    command: str  # rendered and quoted
    run_id: str
    experiment_id: str
    store: TrackingStore
    env_manager: EnvironmentManager
    backend_config: Mapping[str, Any] = field(default_factory=dict)
    docker_args: Mapping[str, str | bool] = field(default_factory=dict)
    build_image: bool = False
    docker_auth: Mapping[str, str] | None = None
    synchronous: bool = True
    storage_dir: Path | None = None
    log: Callable[[str], None] = _ignore
    artifact_uri: str = ""  # the run's artifact root, as the store reported it
    extra_env: Mapping[str, str] = field(default_factory=dict)  # more variables for the child

    @property
    def tracking_uri(self) -> str:
        return self.store.tracking_uri


class Backend(ABC):
    """Where runs execute. The core opens the tracking run before ``submit`` and records a
    FAILED status if ``submit`` raises; the backend owns the run from then on."""

    name: ClassVar[str]

    def validate(  # noqa: B027 - optional hook
        self, project: Project, backend_config: Mapping[str, Any]
    ) -> None:
        """Checks run before any tracking run is opened (config keys, files, tools)."""

    def validate_tracking_uri(self, tracking_uri: str) -> None:  # noqa: B027 - optional hook
        """Refuse a tracking store this backend cannot report to, before any run is opened."""

    @abstractmethod
    def submit(self, request: SubmitRequest) -> SubmittedRun: ...
