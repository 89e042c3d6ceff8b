"""Tracking stores, chosen by the tracking URI's scheme.

``file:`` or a plain path -> :mod:`mlproj.tracking.file_store` (written by mlproj itself);
``http(s):`` -> :mod:`mlproj.tracking.rest_store`; SQL and ``databricks`` -> the ``mlflow``
package through :mod:`mlproj.tracking.mlflow_store`. Each is imported only when used.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from mlproj.errors import ExecutionException
from mlproj.locations import local_store_root
from mlproj.tracking.base import TrackingStore

__all__ = ["TrackingStore", "get_store", "resolve_tracking_uri"]

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The absolute tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else ``./mlruns``.

    Plain paths and relative ``file:`` URIs become absolute ``file:///...`` URIs, so children
    started in another folder write to the same store.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    root = local_store_root(uri)
    if root is not None:
        return root.as_uri()
    return uri


def get_store(tracking_uri: str | None = None) -> TrackingStore:
    """Open the store for ``tracking_uri`` (resolved as in :func:`resolve_tracking_uri`)."""
    uri = resolve_tracking_uri(tracking_uri)
    scheme = urlparse(uri).scheme
    if scheme == "file":
        from mlproj.tracking.file_store import FileStore

        return FileStore(uri)
    if scheme in ("http", "https"):
        from mlproj.tracking.rest_store import RestStore

        return RestStore(uri)
    base = scheme.split("+", 1)[0]
    if base in SQL_SCHEMES or scheme == "databricks" or uri == "databricks":
        from mlproj.tracking.mlflow_store import MlflowStore

        return MlflowStore(uri)
    raise ExecutionException(
        f"Unsupported tracking URI {uri!r}: use a file path or file:// URI, an http(s):// MLflow "
        "tracking server, or a SQL URI (sqlite:, postgresql:, mysql:) with mlproj[mlflow]"
    )
