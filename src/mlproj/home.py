"""mlproj's own folder (``MLPROJ_HOME``): environment cache, Git mirrors, run logs."""

from __future__ import annotations

import os
from pathlib import Path

from mlproj.errors import ExecutionException


def mlproj_home() -> Path:
    """``$MLPROJ_HOME``, else the user cache folder (``~/.cache/mlproj`` on Linux)."""
    configured = os.environ.get("MLPROJ_HOME")
    if configured:
        return Path(configured).expanduser().absolute()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mlproj", appauthor=False))


def home_subdir(name: str) -> Path:
    """A sub-folder of the home, created on first use."""
    home = mlproj_home()
    path = home / name
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = "MLPROJ_HOME" if os.environ.get("MLPROJ_HOME") else "mlproj's cache folder"
        raise ExecutionException(
            f"Cannot create {path} in {where} {home}: {exc.strerror or exc}; point MLPROJ_HOME "
            "to a writable folder"
        ) from None
    return path
