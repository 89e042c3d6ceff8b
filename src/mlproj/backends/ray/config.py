"""The ``ray`` backend_config: its keys, typed once, checked before any run is opened."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlproj.backends.config import TIMEOUT_KEY, parse_seconds, refuse_unknown_keys, whole_seconds
from mlproj.errors import ExecutionException

POLL_KEY = "poll-interval"  # the name every backend uses
KNOWN_KEYS = (
    "address",
    "runtime_env",
    "entrypoint_num_cpus",
    "entrypoint_num_gpus",
    "entrypoint_memory",
    "entrypoint_resources",
    "excludes",
    "metadata",
    POLL_KEY,
    TIMEOUT_KEY,
)
# runtime_env keys mlproj sets itself: the project is the working_dir, the environment comes
# from the project's python_env / conda_env.
_OWNED_RUNTIME_KEYS = ("working_dir", "pip", "uv", "conda", "container", "image_uri")
DEFAULT_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class RayConfig:
    address: str
    runtime_env: dict[str, Any] = field(default_factory=dict)  # the user's additions
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None  # bytes
    entrypoint_resources: dict[str, float] | None = None
    excludes: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    poll_interval: float = DEFAULT_POLL_SECONDS
    timeout: int | None = None  # whole seconds of running; the job is stopped (FAILED) after it


def parse_config(raw: Mapping[str, Any]) -> RayConfig:
    refuse_unknown_keys(raw, KNOWN_KEYS, "ray")
    address = raw.get("address") or os.environ.get("RAY_ADDRESS")
    if not address or not isinstance(address, str):
        raise ExecutionException(
            "The ray backend needs the address of the cluster's job API: set 'address' in the "
            "backend config or RAY_ADDRESS (e.g. http://127.0.0.1:8265)"
        )
    runtime_env = raw.get("runtime_env") or {}
    if not isinstance(runtime_env, dict):
        raise ExecutionException(
            f"backend_config: 'runtime_env' must be an object, got {runtime_env!r}"
        )
    owned = [k for k in _OWNED_RUNTIME_KEYS if k in runtime_env]
    if owned:
        raise ExecutionException(
            f"backend_config: 'runtime_env' must not set {', '.join(map(repr, owned))}: the "
            "project folder is the working_dir and its python_env / conda_env gives the "
            "packages (--env-manager local uses the cluster's Python as it is)"
        )
    env_vars = runtime_env.get("env_vars", {})
    if not isinstance(env_vars, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise ExecutionException(
            "backend_config: 'runtime_env.env_vars' must map names to string values"
        )
    memory = raw.get("entrypoint_memory")
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, int) or memory < 0
    ):
        raise ExecutionException(
            f"backend_config: 'entrypoint_memory' must be a whole number of bytes, got {memory!r}"
        )
    return RayConfig(
        address=address,
        runtime_env=dict(runtime_env),
        entrypoint_num_cpus=_amount(raw, "entrypoint_num_cpus"),
        entrypoint_num_gpus=_amount(raw, "entrypoint_num_gpus"),
        entrypoint_memory=memory,
        entrypoint_resources=_resources(raw.get("entrypoint_resources")),
        excludes=_strings(raw, "excludes"),
        metadata=_metadata(raw.get("metadata")),
        poll_interval=parse_seconds(raw, POLL_KEY, DEFAULT_POLL_SECONDS) or DEFAULT_POLL_SECONDS,
        timeout=whole_seconds(parse_seconds(raw, TIMEOUT_KEY)),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _amount(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    number = _number(value)
    if number is None:
        raise ExecutionException(f"backend_config: {key!r} must be a number >= 0, got {value!r}")
    return number


def _resources(value: object) -> dict[str, float] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        amounts = {k: _number(v) for k, v in value.items()}
        if all(isinstance(k, str) for k in amounts) and None not in amounts.values():
            return {k: v for k, v in amounts.items() if v is not None}
    raise ExecutionException(
        f"backend_config: 'entrypoint_resources' must map resource names to numbers >= 0, "
        f"got {value!r}"
    )


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        raise ExecutionException(
            f"backend_config: {key!r} must be a list of non-empty strings, got {value!r}"
        )
    return tuple(value)


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise ExecutionException(
        f"backend_config: 'metadata' must map names to string values, got {value!r}"
    )
