"""MLflow's rules for what a run may record, checked the same way by every store mlproj writes
itself (and by the pipeline before a run is opened): key syntax and length, value lengths,
metric types, params that never change, and the REST API's batch sizes.

The numbers are MLflow's (``mlflow.utils.validation``); a value within them is accepted by
MLflow's own stores and server too.
"""

from __future__ import annotations

import posixpath
import re

from mlproj.errors import ExecutionException
from mlproj.tracking.entities import Metric

__all__ = [
    "MAX_ENTITIES_PER_BATCH",
    "MAX_KEY_LENGTH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "check_metric",
    "check_param",
    "check_tag",
    "param_conflict",
    "shorten",
    "validate_key",
    "validate_value",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
# One log-batch request: at most this many items in all, and this many params or tags.
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100

_KEY_CHARS = re.compile(r"[/\w.\- :]+")


def shorten(value: str, limit: int = 60) -> str:
    """``value`` cut to ``limit`` characters for a message."""
    return value if len(value) <= limit else value[:limit] + "..."


# Keys found valid: runs repeat the same few dozen (mlflow.*, mlproj.*, the params), and a
# sweep checks them for every trial. Bounded, so a stream of distinct keys cannot grow it.
_VALID_KEYS: set[str] = set()
_VALID_KEYS_MAX = 4096


def validate_key(kind: str, key: str) -> None:
    """Check a param / tag / metric key as MLflow does; ``kind`` names it in the message."""
    if type(key) is str and key in _VALID_KEYS:
        return
    _check_key(kind, key)
    if len(_VALID_KEYS) < _VALID_KEYS_MAX:
        _VALID_KEYS.add(key)


def _check_key(kind: str, key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ExecutionException(f"Invalid {kind} key {key!r}: keys must be non-empty strings.")
    if len(key) > MAX_KEY_LENGTH:
        raise ExecutionException(
            f"Invalid {kind} key '{shorten(key)}': it is {len(key)} characters long, the limit "
            f"is {MAX_KEY_LENGTH}. Use a shorter key."
        )
    if not _KEY_CHARS.fullmatch(key):
        raise ExecutionException(
            f"Invalid {kind} key {key!r}: keys may contain only letters, digits, '_', '-', '.', "
            "' ', ':' and '/'."
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        raise ExecutionException(
            f"Invalid {kind} key {key!r}: it must be a normalised relative path (no leading or "
            "trailing '/', no '//', '.' or '..' parts)."
        )


def validate_value(kind: str, key: str, value: str, limit: int) -> None:
    """A value longer than ``limit`` is refused, naming the key and how it starts."""
    if len(value) > limit:
        raise ExecutionException(
            f"Value of {kind} {key!r} is {len(value)} characters long, the limit is {limit} "
            f"(starts with '{shorten(value)}'). Log long values as an artifact instead."
        )


def check_param(key: str, value: str) -> None:
    validate_key("param", key)
    validate_value("param", key, value, MAX_PARAM_VALUE_LENGTH)


def check_tag(key: str, value: str) -> None:
    validate_key("tag", key)
    validate_value("tag", key, value, MAX_TAG_VALUE_LENGTH)


def check_metric(metric: Metric) -> None:
    """A metric point: a valid key, a number (not a bool), integer timestamp and step."""
    validate_key("metric", metric.key)
    value, timestamp, step = metric.value, metric.timestamp, metric.step
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExecutionException(
            f"Invalid value {value!r} for metric {metric.key!r}: metrics must be numbers."
        )
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise ExecutionException(
            f"Invalid timestamp {timestamp!r} for metric {metric.key!r}: use integer "
            "milliseconds since the epoch."
        )
    if isinstance(step, bool) or not isinstance(step, int):
        raise ExecutionException(
            f"Invalid step {step!r} for metric {metric.key!r}: steps must be integers."
        )


def param_conflict(run_id: str, key: str, old: str, new: str) -> ExecutionException:
    """The error for logging a param again with another value (MLflow's params never change)."""
    return ExecutionException(
        f"Param {key!r} of run '{run_id}' was already logged with value '{shorten(old)}'; it "
        f"cannot change to '{shorten(new)}' (params are immutable). Start a new run, or log the "
        "new value under another key."
    )
