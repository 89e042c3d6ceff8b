"""mlproj's own folder (``MLPROJ_HOME``): environment cache, Git mirrors, run logs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.settings import HOME


def mlproj_home() -> Path:
    """``$MLPROJ_HOME``, else the user cache folder (``~/.cache/mlproj`` on Linux)."""
    configured = HOME.get()
    return configured if configured is not None else _user_cache_dir()


def _user_cache_dir() -> Path:
    """The platform's per-user cache folder for mlproj, where platformdirs puts it (so caches
    made by earlier versions are found), without importing it: its import costs 5 ms a start."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA", "").strip()
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / "mlproj" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "mlproj"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mlproj"


def home_subdir(name: str) -> Path:
    """A sub-folder of the home, created on first use."""
    home = mlproj_home()
    path = home / name
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = "MLPROJ_HOME" if HOME.is_set() else "mlproj's cache folder"
        raise ExecutionException(
            f"Cannot create {path} in {where} {home}: {exc.strerror or exc}; point MLPROJ_HOME "
            "to a writable folder"
        ) from None
    return path
