"""The ``databricks`` backend_config (a new-cluster spec) and the checks run before a tracking
run is opened: config given, new cluster only, remote tracking URI, no docker projects, SDK."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from mlproj.backends.config import TIMEOUT_KEY, parse_seconds, refuse_unknown_keys, whole_seconds
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

POLL_KEY = "poll-interval"
DEFAULT_POLL_SECONDS = 30.0
# Keys mlproj reads itself; they are never sent to Databricks as part of the cluster spec.
OWN_KEYS = (POLL_KEY, TIMEOUT_KEY)
# The top level of the nested form.
NESTED_KEYS = ("new_cluster", "libraries", *OWN_KEYS)


@dataclass(frozen=True)
class DatabricksConfig:
    new_cluster: dict[str, Any]
    libraries: list[dict[str, Any]] = field(default_factory=list)
    poll_interval: float = DEFAULT_POLL_SECONDS
    timeout: int | None = None  # seconds; the run's timeout_seconds


def parse_config(backend_config: Mapping[str, Any] | None) -> DatabricksConfig:
    """Either ``{"new_cluster": {...}, "libraries": [...]}`` or a flat new-cluster spec, plus
    mlproj's own ``poll-interval`` and ``timeout``."""
    if not backend_config:
        raise ExecutionException(
            "The databricks backend needs a backend config: pass -c/--backend-config with a "
            'JSON cluster spec, e.g. {"spark_version": "15.4.x-scala2.12", "node_type_id": '
            '"i3.xlarge", "num_workers": 1}'
        )
    config = dict(backend_config)
    poll = parse_seconds(config, POLL_KEY, DEFAULT_POLL_SECONDS) or DEFAULT_POLL_SECONDS
    timeout = parse_seconds(config, TIMEOUT_KEY)
    for key in OWN_KEYS:
        config.pop(key, None)
    new_cluster = config.get("new_cluster")
    if "existing_cluster_id" in config or (
        isinstance(new_cluster, dict) and "existing_cluster_id" in new_cluster
    ):
        raise ExecutionException(
            "backend_config: 'existing_cluster_id' is not supported; give a new cluster "
            "specification (new_cluster) instead: project runs on existing clusters are not "
            "supported"
        )
    nested = "new_cluster" in config
    if nested:
        refuse_unknown_keys(
            config, NESTED_KEYS, "databricks", hint=" (cluster fields go inside 'new_cluster')"
        )
        cluster = config["new_cluster"]
        libraries = config.get("libraries") or []
        where = "backend_config.new_cluster"
    else:
        libraries = config.pop("libraries", None) or []
        cluster, where = config, "backend_config"
    if not isinstance(cluster, dict):
        raise ExecutionException(f"{where} must be a JSON object (a new-cluster spec)")
    cluster_keys = _cluster_spec_keys()
    if cluster_keys is not None:
        # The SDK drops fields it does not know without a word: a typo would be ignored.
        valid = cluster_keys if nested else (*NESTED_KEYS, *cluster_keys)
        refuse_unknown_keys(cluster, valid, "databricks", hint=f" ({where} is a new-cluster spec)")
    if not isinstance(libraries, list) or not all(isinstance(lib, dict) for lib in libraries):
        raise ExecutionException(
            'backend_config.libraries must be a list of library specs, e.g. [{"pypi": '
            '{"package": "scikit-learn"}}]'
        )
    return DatabricksConfig(
        new_cluster=dict(cluster),
        libraries=list(libraries),
        poll_interval=poll,
        timeout=whole_seconds(timeout),
    )


def _cluster_spec_keys() -> tuple[str, ...] | None:
    """The fields of a new-cluster spec the installed databricks-sdk knows; None without it
    (``validate`` then says the SDK is missing)."""
    import dataclasses

    try:
        from databricks.sdk.service.compute import ClusterSpec
    except ImportError:
        return None
    return tuple(f.name for f in dataclasses.fields(ClusterSpec))


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
