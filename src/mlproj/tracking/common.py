"""Small pieces every tracking store needs the same way."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

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


def redact_url(url: str, *, keep_user: bool = False) -> str:
    """The URL without its password (and user name, unless ``keep_user``), safe for messages.

    HTTP URLs may carry a token as the user name; SQL URLs name a database user worth showing.
    """
    from mlproj.sources.uris import redact_query

    parts = urlsplit(url)
    if parts.query:
        # Tokens also travel as query values (`?token=...`).
        parts = parts._replace(query=redact_query(parts.query))
        url = urlunsplit(parts)
    if parts.password is None and (keep_user or parts.username is None):
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if keep_user and parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}", parts.path, parts.query, parts.fragment))
