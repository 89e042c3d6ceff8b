"""Run records of a file store read from ``meta.yaml`` alone, for fast listings.

A full run of the MLflow file layout is one file per param, metric and tag: listing 10,000 runs
with everything means opening ~100,000 files. A table of runs needs only what ``meta.yaml``
holds (id, name, status, times, user), one file per run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from mlproj.tracking.entities import INT_TO_STATUS, RunInfo
from mlproj.tracking.file_store import parse_meta


def scan_run_infos(
    root: Path,
    experiment_ids: Sequence[str],
    *,
    status: str | None = None,
    max_results: int = 1000,
) -> list[RunInfo]:
    """Active runs of the given experiments under ``root``, newest first."""
    found: list[RunInfo] = []
    for experiment_id in dict.fromkeys(str(e) for e in experiment_ids):
        found.extend(_scan_experiment(root / experiment_id, experiment_id, status))
    found.sort(key=lambda info: (-info.start_time, info.run_id))
    return found[:max_results]


def _scan_experiment(folder: Path, experiment_id: str, status: str | None) -> list[RunInfo]:
    infos: list[RunInfo] = []
    try:
        entries = os.scandir(folder)
    except OSError:
        return infos
    with entries:
        for entry in entries:
            if entry.name[0] == "." or not entry.is_dir():
                continue
            info = _read_info(entry.path, entry.name, experiment_id)
            if info is not None and (status is None or info.status == status):
                infos.append(info)
    return infos


def _read_info(run_dir: str, run_id: str, experiment_id: str) -> RunInfo | None:
    try:
        with open(f"{run_dir}/meta.yaml", encoding="utf-8") as file:  # noqa: PTH123 - hot loop
            text = file.read()
        meta = _fast_fields(text) or parse_meta(text)
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # not a run folder (tags/, models/) or one being written right now
    # MLflow ignores a run whose meta names another experiment, and deleted runs.
    if str(meta.get("experiment_id", experiment_id)) != experiment_id:
        return None
    if meta.get("lifecycle_stage", "active") != "active":
        return None
    status = meta.get("status")
    end_time = meta.get("end_time")
    return RunInfo(
        run_id=run_id,
        experiment_id=experiment_id,
        run_name=str(meta.get("run_name") or ""),
        status=INT_TO_STATUS.get(status, "RUNNING") if isinstance(status, int) else str(status),
        start_time=_int(meta.get("start_time")),
        end_time=_int(end_time) if end_time is not None else None,
        artifact_uri=str(meta.get("artifact_uri") or ""),
        user_id=str(meta.get("user_id") or ""),
    )


_FIELDS = re.compile(
    r"^(artifact_uri|end_time|experiment_id|lifecycle_stage|run_name|start_time|status|user_id):"
    r" ?(.*)$",
    re.MULTILINE,
)
# Plain YAML scalars that mean something else than their text (null, booleans, syntax).
_SPECIAL_START = frozenset('"[]{}&*!|>%@`,?:-#~')
_SPECIAL_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def _fast_fields(text: str) -> dict[str, object] | None:
    """The fields a listing needs from the flat ``key: value`` meta.yaml MLflow and mlproj
    write; None when anything needs a real YAML parser (quoting, continuation lines)."""
    if "\n " in text or "\r" in text:
        return None
    fields: dict[str, object] = {}
    for key, raw in _FIELDS.findall(text):
        value = raw.strip()
        if key in ("start_time", "end_time", "status"):
            if value.isdigit():
                fields[key] = int(value)
            elif value in ("null", "~", ""):
                fields[key] = None
            else:
                return None
        elif value[:1] == "'" and value[-1:] == "'" and len(value) >= 2:
            fields[key] = value[1:-1].replace("''", "'")
        elif not value:
            fields[key] = None
        elif (
            value[0] in _SPECIAL_START
            or value.lower() in _SPECIAL_WORDS
            or " #" in value
            or ": " in value
        ):
            return None
        else:
            fields[key] = value
    return fields or None


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value))
    except ValueError:
        return 0
