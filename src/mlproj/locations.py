"""Which local path a URI names: ``file:`` URIs and plain paths.

Shared by subsystems that must not know each other: tracking (the file store's folder), the
docker environment and the Kubernetes backend (mounting or excluding a local store), sources
and downloads (``file://`` projects and parameters). Depends on nothing in mlproj but errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

from mlproj.errors import ExecutionException


def local_store_root(uri: str) -> Path | None:
    """The folder of a file-store URI or plain path; None for any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ExecutionException(
                f"Tracking URI {uri!r}: file URIs must name a local path (file:///abs/path)"
            )
        return Path(unquote(parsed.path)).expanduser().absolute()
    # A one-letter scheme is a Windows drive letter, not a scheme.
    if parsed.scheme == "" or len(parsed.scheme) == 1:
        return Path(uri).expanduser().absolute()
    return None


def file_uri_to_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI on this machine, None for another host."""
    parts = urlsplit(uri)
    host = parts.netloc
    path = unquote(parts.path)
    if host in ("", "localhost", "127.0.0.1") or host == _hostname():
        return Path(path or "/")
    if os.name == "nt":  # UNC share
        return Path(f"//{host}{path}")
    return None


def _hostname() -> str:
    import socket

    return socket.gethostname()
