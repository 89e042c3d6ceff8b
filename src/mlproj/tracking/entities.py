"""Plain records shared by every tracking store."""

from __future__ import annotations

from mlproj.records import field, record

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


@record(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str = "active"
    creation_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


@record(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int
    end_time: int | None
    artifact_uri: str
    user_id: str
    lifecycle_stage: str = "active"


@record(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int = 0


@record(frozen=True)
class Run:
    info: RunInfo
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value per key

    @property
    def run_id(self) -> str:
        return self.info.run_id
