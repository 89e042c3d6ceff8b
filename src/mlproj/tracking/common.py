"""Small pieces every tracking store needs the same way."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlproj.errors import ExecutionException


def now_ms() -> int:
    """Now, in milliseconds since the epoch (MLflow's timestamps)."""
    return time.time_ns() // 1_000_000


def local_folder(uri: str) -> Path | None:
    """The folder of a ``file:`` URI or plain absolute path; None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def run_not_found(run_id: str, store: str) -> ExecutionException:
    """The error for a run id that ``store`` (its URI, without credentials) does not have."""
    return ExecutionException(f"Run '{run_id}' not found in tracking store {store}")
