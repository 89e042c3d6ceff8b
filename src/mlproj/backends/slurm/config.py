"""The ``slurm`` backend_config: its keys, typed once, checked before any run is opened.

Every resource key becomes one ``sbatch`` option passed as its own argument (never through a
shell), so a value cannot change the command line; values Slurm would only refuse after the
run is opened (a malformed ``time`` or ``mem``) are checked here first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj.backends.config import TIMEOUT_KEY, parse_seconds, refuse_unknown_keys, whole_seconds
from mlproj.errors import ExecutionException

STRING_OPTIONS = {  # key -> sbatch option
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "time": "--time",
    "nodes": "--nodes",
    "mem": "--mem",
    "gpus": "--gpus",
    "gres": "--gres",
    "constraint": "--constraint",
}
INT_OPTIONS = {"ntasks": "--ntasks", "cpus_per_task": "--cpus-per-task"}
ENV_BUILD_KEY = "env_build"
ENV_BUILD_CHOICES = ("submit", "job")
POLL_KEY = "poll-interval"  # the name every backend uses
KNOWN_KEYS = (
    *STRING_OPTIONS,
    *INT_OPTIONS,
    "exclusive",
    "modules",
    "setup",
    "sbatch_args",
    "log_dir",
    ENV_BUILD_KEY,
    "mlproj_python",
    POLL_KEY,
    TIMEOUT_KEY,
)
DEFAULT_POLL_SECONDS = 5.0

# Slurm's --time forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; or no limit.
_TIME = re.compile(r"(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|UNLIMITED|INFINITE)", re.IGNORECASE)
_MEM = re.compile(r"\d+[KMGT]?", re.IGNORECASE)
_NODES = re.compile(r"\d+(-\d+)?")


@dataclass(frozen=True)
class SlurmConfig:
    options: tuple[str, ...] = ()  # sbatch arguments from the resource keys and sbatch_args
    modules: tuple[str, ...] = ()  # `module load` arguments, one line each
    setup: tuple[str, ...] = ()  # shell lines run in the job before the command
    log_dir: Path | None = None  # where the job's output file goes (default under MLPROJ_HOME)
    env_build: str = "submit"  # "submit": on this host into MLPROJ_HOME; "job": in the job
    mlproj_python: str | None = None  # the Python with mlproj the job uses when env_build=job
    poll_interval: float = DEFAULT_POLL_SECONDS
    timeout: int | None = None  # whole seconds (--timeout), given to Slurm as --time minutes


def parse_config(raw: Mapping[str, Any]) -> SlurmConfig:
    refuse_unknown_keys(raw, KNOWN_KEYS, "slurm")
    options = _resource_options(raw)
    sbatch_args = _lines(raw, "sbatch_args")
    for arg in sbatch_args:
        if not arg.startswith("-"):
            raise ExecutionException(
                f"backend_config: 'sbatch_args' items are sbatch options (e.g. "
                f"'--mail-type=END'), got {arg!r}"
            )
    env_build = raw.get(ENV_BUILD_KEY, "submit")
    if env_build not in ENV_BUILD_CHOICES:
        raise ExecutionException(
            f"backend_config: {ENV_BUILD_KEY!r} must be one of "
            f"{', '.join(map(repr, ENV_BUILD_CHOICES))}, got {env_build!r}"
        )
    log_dir = raw.get("log_dir")
    python = raw.get("mlproj_python")
    return SlurmConfig(
        options=(*options, *sbatch_args),
        modules=_lines(raw, "modules"),
        setup=_lines(raw, "setup"),
        log_dir=None
        if log_dir is None
        else Path(_string("log_dir", log_dir)).expanduser().absolute(),
        env_build=env_build,
        mlproj_python=None if python is None else _string("mlproj_python", python),
        poll_interval=parse_seconds(raw, POLL_KEY, DEFAULT_POLL_SECONDS) or DEFAULT_POLL_SECONDS,
        timeout=whole_seconds(parse_seconds(raw, TIMEOUT_KEY)),
    )


def _resource_options(raw: Mapping[str, Any]) -> list[str]:
    """The sbatch options of the resource keys, checked."""
    options: list[str] = []
    for key, option in STRING_OPTIONS.items():
        value = raw.get(key)
        if value is None:
            continue
        text = _string(key, value, allow_int=key in ("time", "nodes", "gpus", "mem"))
        if key == "time" and not _TIME.fullmatch(text):
            raise ExecutionException(
                f"backend_config: 'time' = {value!r} is not a Slurm time limit (minutes, "
                "'MM:SS', 'HH:MM:SS', 'D-HH:MM:SS' or 'UNLIMITED')"
            )
        if key == "mem" and not _MEM.fullmatch(text):
            raise ExecutionException(
                f"backend_config: 'mem' = {value!r} is not a Slurm memory size (e.g. 4G, 500M)"
            )
        if key == "nodes" and not _NODES.fullmatch(text):
            raise ExecutionException(
                f"backend_config: 'nodes' = {value!r} must be a count or a range (2, '1-4')"
            )
        options.append(f"{option}={text}")
    for key, option in INT_OPTIONS.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExecutionException(
                f"backend_config: {key!r} must be a whole number >= 1, got {value!r}"
            )
        options.append(f"{option}={value}")
    timeout = parse_seconds(raw, TIMEOUT_KEY)
    if timeout is not None:
        if raw.get("time") is not None:
            raise ExecutionException(
                "backend_config: give either 'time' (Slurm's limit) or 'timeout' (seconds), "
                "not both"
            )
        # Slurm limits are whole minutes: rounded up, so the limit is never shorter.
        options.append(f"--time={math.ceil(timeout / 60)}")
    exclusive = raw.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise ExecutionException(
            f"backend_config: 'exclusive' must be true or false, got {exclusive!r}"
        )
    if exclusive:
        options.append("--exclusive")
    return options


def _string(key: str, value: object, *, allow_int: bool = False) -> str:
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise ExecutionException(
            f"backend_config: {key!r} must be a non-empty one-line string, got {value!r}"
        )
    return value.strip()


def _lines(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings (a single string is one item)."""
    value = raw.get(key)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ExecutionException(
            f"backend_config: {key!r} must be a list of non-empty strings, got {value!r}"
        )
    return tuple(i.strip() for i in items)
