"""mlproj's own settings (``MLPROJ_*`` environment variables), each declared once.

A setting is read each time it is used, never at import: a later change takes effect, and a
bad value is one clear error naming the variable and the value when the setting is needed,
not a traceback at start-up. Add a setting here, then call ``SETTING.get()`` where it is used.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from mlproj.errors import ExecutionException

T = TypeVar("T")


class Setting(Generic[T]):
    """One ``MLPROJ_*`` variable: its name, how its text becomes a value, and the default
    (used when it is unset or empty)."""

    __slots__ = ("default", "help", "name", "parse")

    def __init__(self, name: str, parse: Callable[[str], T], default: T, help: str) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.help = help

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        raw = (os.environ if environ is None else environ).get(self.name, "")
        if not raw.strip():
            return self.default
        try:
            return self.parse(raw.strip())
        except ValueError as exc:
            raise ExecutionException(
                f"Environment variable {self.name}={raw!r} is invalid: {exc}; "
                f"set it to {self.help} or unset it"
            ) from None

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name, "").strip())


def _seconds(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError("expected a positive number of seconds" if not allow_zero
                         else "expected zero or a positive number of seconds")  # fmt: skip
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text, allow_zero=False)


def non_negative_seconds(text: str) -> float:
    return _seconds(text, allow_zero=True)


def flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1/true/yes/on or 0/false/no/off")


def folder(text: str) -> Path:
    return Path(text).expanduser().absolute()


HOME: Setting[Path | None] = Setting(
    "MLPROJ_HOME", folder, None, "a writable folder (default: the user cache folder)"
)
KILL_GRACE = Setting(
    "MLPROJ_KILL_GRACE",
    non_negative_seconds,
    10.0,
    "the seconds between SIGTERM and SIGKILL when a run is stopped (default 10)",
)
OUTPUT_LINGER = Setting(
    "MLPROJ_OUTPUT_LINGER",
    non_negative_seconds,
    2.0,
    "the seconds a run waits, once its command has exited, for processes the command left "
    "running to close its output (default 2); they are left running, their later output unkept",
)
ENV_MANAGER: Setting[str | None] = Setting(
    "MLPROJ_ENV_MANAGER", str, None, "local, uv, virtualenv or conda"
)
DEBUG = Setting("MLPROJ_DEBUG", flag, False, "1 to show tracebacks of unexpected errors")
GIT_TIMEOUT = Setting(
    "MLPROJ_GIT_TIMEOUT", positive_seconds, 60.0, "the seconds a git network step may take"
)
BUILD_STEP_TIMEOUT = Setting(
    "MLPROJ_BUILD_TIMEOUT",
    positive_seconds,
    3600.0,
    "the seconds one environment build step (create, install) may take (default 3600)",
)
PYTHON_INSTALL_TIMEOUT = Setting(
    "MLPROJ_PYTHON_INSTALL_TIMEOUT",
    positive_seconds,
    900.0,
    "the seconds `uv python install` may take to download an interpreter (default 900)",
)

SQLITE_TIMEOUT = Setting(
    "MLPROJ_SQLITE_TIMEOUT",
    positive_seconds,
    300.0,
    "the seconds a write may wait for a locked SQLite database (default 300)",
)
SQLITE_WAL = Setting(
    "MLPROJ_SQLITE_WAL", flag, True, "0 to keep SQLite out of WAL mode on local filesystems"
)

#: Every setting, for documentation and ``mlproj`` support commands.
ALL: tuple[Setting[Any], ...] = (
    HOME,
    KILL_GRACE,
    ENV_MANAGER,
    DEBUG,
    GIT_TIMEOUT,
    BUILD_STEP_TIMEOUT,
    PYTHON_INSTALL_TIMEOUT,
    SQLITE_TIMEOUT,
    SQLITE_WAL,
)


def kill_grace() -> float:
    """Seconds between SIGTERM and SIGKILL when stopping a process group."""
    return KILL_GRACE.get()


def output_linger() -> float:
    """Seconds to wait, after a command exited, for what it left running to close its
    output: a run ends with its command (as with ``mlflow run``), not with a daemon."""
    try:
        return OUTPUT_LINGER.get()
    except ExecutionException as exc:  # ending a run must not fail over a setting
        print(f"mlproj: warning: {exc}; waiting {OUTPUT_LINGER.default:g} s", file=sys.stderr)
        return OUTPUT_LINGER.default
