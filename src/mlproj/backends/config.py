"""Rules every backend's configuration follows: known keys only, seconds written one way.

Each backend turns the raw ``backend_config`` mapping into its own typed object once
(:meth:`mlproj.backends.base.Backend.parse_config`); these helpers keep the messages and the
rules the same on every backend, built-in or plugin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mlproj.errors import ExecutionException

TIMEOUT_KEY = "timeout"


def refuse_unknown_keys(
    raw: Mapping[str, Any], valid: Iterable[str], backend: str, *, hint: str = ""
) -> None:
    """ExecutionException naming the unknown keys and listing the valid ones."""
    known = list(valid)
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        listed = ", ".join(repr(k) for k in known) or "none"
        raise ExecutionException(
            f"backend_config: unknown key(s) {', '.join(repr(k) for k in unknown)} for the "
            f"{backend} backend; valid keys: {listed}{hint}"
        )


def parse_seconds(raw: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    """``raw[key]`` as seconds: a number or a numeric string, finite and > 0.

    The one rule for timeouts and poll intervals on every backend (``60``, ``2.5``, ``"60"``);
    a missing key or ``None`` gives ``default``.
    """
    value = raw.get(key)
    if value is None:
        return default
    seconds = _as_number(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ExecutionException(
            f"backend_config: {key!r} must be a positive number of seconds (e.g. 60 or "
            f'"60"), got {value!r}'
        )
    return seconds


def whole_seconds(seconds: float | None) -> int | None:
    """For APIs that take whole seconds (Kubernetes deadlines, Databricks timeouts): rounded
    up, so a limit is never shorter than asked."""
    return None if seconds is None else math.ceil(seconds)


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):  # JSON true is not 1 second
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
