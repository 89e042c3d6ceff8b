"""Parsed YAML files kept as JSON under ``MLPROJ_HOME/yaml``, so a warm run does not import
PyYAML at all (its import alone compiles a dozen regular expressions and costs more than the
rest of a no-op run's own work).

An entry holds the exact text it was parsed from and is used only when the file's text is
unchanged; only data that JSON gives back identical (no dates, no non-string keys, no NaN) is
kept. Any problem with the cache itself just means parsing the file again.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from mlproj.home import mlproj_home

_VERSION = 1


def _entry_path(text: str) -> Path:
    name = f"{zlib.crc32(text.encode('utf-8')):08x}-{len(text)}.json"
    return mlproj_home() / "yaml" / name


class _Missing:
    """What :func:`lookup` returns when it has nothing for a text."""


MISSING: Any = _Missing()


def lookup(text: str) -> Any:
    """The data parsed from exactly ``text`` before, or :data:`MISSING`."""
    try:
        stored = json.loads(_entry_path(text).read_text(encoding="utf-8"))
        if stored.get("version") == _VERSION and stored.get("text") == text:
            return stored["data"]
    except Exception:  # noqa: BLE001 - no home, no entry, a damaged entry: parse the file
        return MISSING
    return MISSING


def remember(text: str, data: Any) -> None:
    """Keep ``data`` (parsed from ``text``) for the next :func:`lookup`, when JSON gives it
    back identical. Best effort: a cache that cannot be written changes nothing else."""
    try:
        encoded = json.dumps({"version": _VERSION, "text": text, "data": data})
        if json.loads(encoded)["data"] != data:
            return  # JSON would change it (int keys, NaN): parse it each time instead
        entry = _entry_path(text)
    except Exception:  # noqa: BLE001 - dates, sets (not JSON), or no usable home
        return
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(encoded, encoding="utf-8")
        tmp.replace(entry)  # readers see the old entry or the new one, never half of one
    except OSError:
        tmp.unlink(missing_ok=True)
