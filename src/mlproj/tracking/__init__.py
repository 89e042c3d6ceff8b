"""Tracking stores, chosen by the tracking URI's scheme.

``file:`` or a plain path -> :mod:`mlproj.tracking.file_store` and ``sqlite:`` ->
:mod:`mlproj.tracking.sqlite_store` (both written by mlproj itself); ``http(s):`` ->
:mod:`mlproj.tracking.rest_store`; other SQL databases and ``databricks`` -> the ``mlflow``
package through :mod:`mlproj.tracking.mlflow_store`. Each is imported only when used.

With no URI given, the store is the one MLflow (>= 3.7) picks by default in the current folder:
see :func:`default_tracking_uri`.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from mlproj.errors import ExecutionException
from mlproj.locations import local_store_root
from mlproj.tracking.base import TrackingStore

__all__ = [
    "TrackingStore",
    "default_tracking_uri",
    "get_store",
    "local_store_root",
    "resolve_tracking_uri",
]

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The absolute tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else MLflow's
    default for the current folder (:func:`default_tracking_uri`).

    Plain paths and relative ``file:`` and ``sqlite:`` URIs become absolute, so children started
    in another folder write to the same store.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    root = local_store_root(uri)
    if root is not None:
        return root.as_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # Relative to the caller's folder; children may start in another one.
        path, sep, query = uri[len("sqlite:///") :].partition("?")
        if path and path != ":memory:":
            absolute = Path(unquote(path)).expanduser().absolute()
            return f"sqlite:///{quote(str(absolute), safe='/')}{sep}{query}"
    return uri


def default_tracking_uri(folder: Path | None = None) -> str:
    """MLflow's default store (>= 3.7): ``./mlruns`` when it already holds an experiment (a
    numeric folder with a ``meta.yaml``), else ``sqlite:///mlflow.db``; both absolute.

    MLflow >= 3.13 refuses a file store it was not told to accept, so a ``./mlruns`` made anew
    would break the user's own ``mlflow`` in that folder: new folders get MLflow's database.
    """
    base = (folder or Path.cwd()).absolute()
    mlruns = base / "mlruns"
    try:
        with os.scandir(mlruns) as entries:
            for entry in entries:
                if (
                    entry.name.isdigit()
                    and entry.is_dir()
                    and os.path.lexists(f"{entry.path}/meta.yaml")
                ):
                    return mlruns.as_uri()
    except OSError:
        pass
    return f"sqlite:///{quote(str(base / 'mlflow.db'), safe='/')}"


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
    if scheme == "sqlite":
        from mlproj.tracking.sqlite_store import SqliteStore

        return SqliteStore(uri)
    base = scheme.split("+", 1)[0]
    if base in SQL_SCHEMES or scheme == "databricks" or uri == "databricks":
        from mlproj.tracking.mlflow_store import MlflowStore

        return MlflowStore(uri)
    raise ExecutionException(
        f"Unsupported tracking URI {uri!r}: use a file path or file:// URI, an http(s):// MLflow "
        "tracking server, a sqlite: database, or a SQL URI (postgresql:, mysql:, mssql:) with "
        "mlproj[mlflow]"
    )
