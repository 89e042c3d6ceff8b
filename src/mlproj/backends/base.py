"""The backend interface: parse its config, submit a prepared run, find a run again later.

A backend's life with mlproj, in order: :meth:`Backend.parse_config` turns the raw
``backend_config`` into the backend's own typed object (once; code after that never reads the
raw mapping) -> :meth:`Backend.validate` checks the project against it -> the core opens the
tracking run -> :meth:`Backend.submit` gets a :class:`SubmitRequest` carrying the parsed config
-> later, maybe in another process, :meth:`Backend.reattach` rebuilds a handle on the run from
its tags (``mlproj runs cancel``, ``runs reap``, detached watchers).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

from mlproj.envs.base import EnvironmentManager
from mlproj.records import field, record
from mlproj.sources.base import FetchedProject
from mlproj.spec.params import ResolvedParameters
from mlproj.spec.project import EntryPoint, Project
from mlproj.submitted import SubmittedRun
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

ConfigT = TypeVar("ConfigT")


def _ignore(_: str) -> None:
    return None


@record
class SubmitRequest(Generic[ConfigT]):
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
    backend_config: ConfigT  # what the backend's parse_config returned
    docker_args: Mapping[str, str | bool] = field(default_factory=dict)
    build_image: bool = False
    docker_auth: Mapping[str, str] | None = None
    synchronous: bool = True
    storage_dir: Path | None = None
    log: Callable[[str], None] = _ignore
    artifact_uri: str = ""  # the run's artifact root, as the store reported it
    extra_env: Mapping[str, str] = field(default_factory=dict)  # more variables for the child
    base_env: Mapping[str, str] | None = None  # the child's variables before those; None: ours
    # Local, synchronous: the caller's event loop reads the output and awaits the end
    # (orchestration); see ProcessRunner's caller_reads.
    caller_reads: bool = False

    @property
    def tracking_uri(self) -> str:
        return self.store.tracking_uri


class Backend(ABC, Generic[ConfigT]):
    """Where runs execute. The core opens the tracking run before ``submit`` and records a
    FAILED status if ``submit`` raises; the backend owns the run from then on."""

    name: ClassVar[str]

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> ConfigT:
        """The backend's configuration from the raw ``backend_config`` (a JSON object).

        Runs before any tracking run is opened. Refuse unknown keys naming the valid ones
        (:func:`mlproj.backends.config.refuse_unknown_keys`) and read seconds with
        :func:`mlproj.backends.config.parse_seconds`. By default the mapping is kept as given,
        for plugins that read it themselves.
        """
        return cast(ConfigT, dict(raw))

    def validate(self, project: Project, config: ConfigT) -> None:
        """Checks run before any tracking run is opened (files, tools, the project's shape)."""

    def validate_tracking_uri(self, tracking_uri: str) -> None:
        """Refuse a tracking store this backend cannot report to, before any run is opened."""

    @abstractmethod
    def submit(self, request: SubmitRequest[ConfigT]) -> SubmittedRun: ...

    def reattach(self, run: Run, store: TrackingStore) -> SubmittedRun | None:
        """A live handle on ``run`` (submitted earlier, maybe by another process), rebuilt from
        the ids its submission stored in the run's tags; None when the tags hold no job (not
        submitted yet, or the submission died first) or this backend cannot find its runs
        again.

        ``mlproj runs cancel`` calls ``cancel()`` on it and ``runs reap`` ``get_status()``;
        the handle must record a terminal status in the store when it sees one (the callers
        record it otherwise). Raise ExecutionException when the run's cluster cannot be
        reached.
        """
        return None
