"""Small pieces every tracking store needs the same way."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlproj.errors import ExecutionException


def now_ms() -> int:
    """Now, in milliseconds since the epoch (MLflow's timestamps)."""
    return time.time_ns() // 1_000_000


def local_folder(uri: str) -> Path | None:
    """The folder of a ``file:`` URI or a plain path (a relative one from the current folder,
    as MLflow clients take it); None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if uri.startswith("/"):
        return Path(uri)
    if _relative_path(uri):
        return Path(os.path.abspath(uri))  # noqa: PTH100
    return None


def _relative_path(location: str) -> bool:
    """A plain relative path such as ``./mlruns/1``, not a URI (``s3://``, ``dbfs:/``)."""
    head = location.split("/", 1)[0]
    return bool(location) and not location.startswith("/") and ":" not in head


def run_artifact_uri(experiment_location: str, run_id: str) -> str:
    """Where a new run keeps its artifacts: ``<experiment location>/<run id>/artifacts``.

    A relative location (``mlflow server --default-artifact-root ./mlruns`` stores one) is
    taken from the current folder, as MLflow clients take it, and the run's is stored
    absolute: the project's command runs in its own folder, where its MLflow would
    otherwise put the artifacts somewhere else than mlproj puts the run's log."""
    base = experiment_location.rstrip("/")
    if _relative_path(base):
        base = Path(os.path.abspath(base)).as_uri()  # noqa: PTH100
    return f"{base}/{run_id}/artifacts"


def run_not_found(run_id: str, store: str) -> ExecutionException:
    """The error for a run id that ``store`` (its URI, without credentials) does not have."""
    return ExecutionException(f"Run '{run_id}' not found in tracking store {store}")
