"""The ``databricks`` backend_config (a new-cluster spec) and the checks run before a tracking
run is opened: config given, new cluster only, remote tracking URI, no docker projects, SDK."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

POLL_KEY = "poll-interval"
TIMEOUT_KEY = "timeout"
DEFAULT_POLL_SECONDS = 30.0
# Keys mlproj reads itself; they are never sent to Databricks as part of the cluster spec.
OWN_KEYS = (POLL_KEY, TIMEOUT_KEY)


@dataclass(frozen=True)
class DatabricksConfig:
    new_cluster: dict[str, Any]
    libraries: list[dict[str, Any]] = field(default_factory=list)
    poll_interval: float = DEFAULT_POLL_SECONDS
    timeout: int | None = None  # seconds; the run's timeout_seconds


def parse_config(backend_config: Mapping[str, Any] | None) -> DatabricksConfig:
    """Either ``{"new_cluster": {...}, "libraries": [...]}`` or a flat new-cluster spec."""
    if not backend_config:
        raise ExecutionException(
            "The databricks backend needs a backend config: pass -c/--backend-config with a "
            'JSON cluster spec, e.g. {"spark_version": "15.4.x-scala2.12", "node_type_id": '
            '"i3.xlarge", "num_workers": 1}'
        )
    config = dict(backend_config)
    poll = config.pop(POLL_KEY, DEFAULT_POLL_SECONDS)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or poll <= 0:
        raise ExecutionException(
            f"backend_config: {POLL_KEY!r} must be a positive number of seconds, got {poll!r}"
        )
    timeout = config.pop(TIMEOUT_KEY, None)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ExecutionException(
            f"backend_config: {TIMEOUT_KEY!r} must be a positive number of seconds, got {timeout!r}"
        )
    if "new_cluster" in config:
        cluster = config["new_cluster"]
        libraries = config.get("libraries") or []
        where = "backend_config.new_cluster"
    else:
        cluster, libraries, where = config, [], "backend_config"
    if not isinstance(cluster, dict):
        raise ExecutionException(f"{where} must be a JSON object (a new-cluster spec)")
    if "existing_cluster_id" in config or "existing_cluster_id" in cluster:
        raise ExecutionException(
            "backend_config: 'existing_cluster_id' is not supported; give a new cluster "
            "specification (new_cluster) instead: project runs on existing clusters are not "
            "supported"
        )
    if not isinstance(libraries, list) or not all(isinstance(lib, dict) for lib in libraries):
        raise ExecutionException(
            'backend_config.libraries must be a list of library specs, e.g. [{"pypi": '
            '{"package": "scikit-learn"}}]'
        )
    return DatabricksConfig(
        new_cluster=dict(cluster),
        libraries=list(libraries),
        poll_interval=float(poll),
        timeout=math.ceil(timeout) if timeout is not None else None,
    )


def check_project(project: Project) -> None:
    if project.env_type == "docker" or project.docker_env is not None:
        raise ExecutionException(
            f"{project.describe()}: docker_env projects cannot run on Databricks; use a "
            "python_env or conda_env, or run with -b kubernetes or locally"
        )


def check_tracking_uri(uri: str) -> None:
    """The cluster logs into the run, so the tracking URI must be reachable from it."""
    scheme = urlparse(uri).scheme
    if uri == "databricks" or scheme in ("databricks", "http", "https"):
        return
    raise ExecutionException(
        "When running on Databricks, the tracking URI must be 'databricks', "
        "'databricks://<profile>' or an http(s):// MLflow server reachable from the cluster; "
        f"got {uri!r}. Set MLFLOW_TRACKING_URI or --tracking-uri."
    )


def cluster_tracking_uri(uri: str) -> str:
    """The URI code on the cluster uses: the workspace itself for any ``databricks`` URI."""
    if uri == "databricks" or urlparse(uri).scheme == "databricks":
        return "databricks"
    return uri


def profile_of(uri: str) -> str | None:
    """The profile of ``databricks://<profile>``; None for other URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "databricks" and parsed.netloc:
        return parsed.netloc.split(":", 1)[0] or None
    return None


def import_sdk() -> None:
    try:
        import databricks.sdk  # noqa: F401
    except ImportError as exc:
        raise ExecutionException(
            "The databricks backend needs databricks-sdk: pip install 'mlproj[databricks]'"
        ) from exc
