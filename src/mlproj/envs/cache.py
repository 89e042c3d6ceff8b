"""The environment cache under ``MLPROJ_HOME/envs``.

Layout: ``<root>/<manager>-<hash>/`` holds ``env/`` (the virtualenv or conda prefix),
``build.log`` and ``mlproj-env.json`` (the marker). ``<root>/.locks/<name>.lock`` serialises
builds of one entry.

Why environments are built in place (under the lock) rather than in a temporary folder and
renamed: virtual environments and conda prefixes record their absolute path (pyvenv.cfg,
console-script shebangs, conda prefix records), so a renamed environment is subtly broken. The
lock plus a marker written last gives the same guarantee as a rename: nobody uses an entry
without a marker, a build that died leaves no marker and the next run wipes and rebuilds it,
and N concurrent runs needing one new environment build it once (the others wait on the lock,
then find the marker).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj.envs.buildlog import BuildLog
from mlproj.fsutil import folder_size, write_json_atomic
from mlproj.home import home_subdir

SCHEMA_VERSION = 1
MARKER = "mlproj-env.json"
BUILD_LOG = "build.log"
ENV_DIR = "env"
_TOUCH_AFTER = 60.0  # seconds; last_used is rewritten at most this often


def envs_root() -> Path:
    return home_subdir("envs")


def platform_tag() -> str:
    return f"{sys.platform}-{os.uname().machine}"


@dataclass(frozen=True)
class EnvKey:
    manager: str
    inputs: Mapping[str, Any]  # everything that decides the environment's contents
    digest: str

    @property
    def name(self) -> str:
        return f"{self.manager}-{self.digest[:20]}"


def make_key(manager: str, inputs: Mapping[str, Any]) -> EnvKey:
    full = {"schema": SCHEMA_VERSION, "manager": manager, "platform": platform_tag(), **inputs}
    canonical = json.dumps(full, sort_keys=True, separators=(",", ":"), default=str)
    return EnvKey(manager, full, hashlib.sha256(canonical.encode("utf-8")).hexdigest())


@dataclass
class Entry:
    """One cache folder, ready or not."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def env_dir(self) -> Path:
        return self.folder / ENV_DIR

    @property
    def marker(self) -> Path:
        return self.folder / MARKER

    @property
    def log_path(self) -> Path:
        return self.folder / BUILD_LOG

    def metadata(self) -> dict[str, Any] | None:
        """The marker's content when the entry is complete and written by this schema."""
        try:
            data = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
            return None
        return data

    def last_used(self) -> float:
        meta = self.metadata()
        if meta is not None and isinstance(meta.get("last_used"), (int, float)):
            return float(meta["last_used"])
        try:
            return self.folder.stat().st_mtime
        except OSError:
            return 0.0


def lock_path(root: Path, name: str) -> Path:
    folder = root / ".locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{name}.lock"


Builder = Callable[[Path, BuildLog], Mapping[str, Any]]


def ensure(
    key: EnvKey,
    build: Builder,
    *,
    title: str,
    log: Callable[[str], None],
    project_dir: Path,
    root: Path | None = None,
) -> tuple[Entry, dict[str, Any]]:
    """The ready entry for ``key``, building it first when needed (once across processes).

    ``build(env_dir, build_log)`` creates the environment at ``env_dir`` and returns extra
    metadata to keep in the marker.
    """
    root = root or envs_root()
    entry = Entry(root / key.name)
    meta = entry.metadata()
    if meta is not None and entry.env_dir.is_dir():
        _touch(entry, meta)
        return entry, meta

    from filelock import FileLock, Timeout  # only when building: importing it costs ~30 ms

    lock = FileLock(str(lock_path(root, key.name)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"Waiting for another mlproj process to finish building environment {key.name}")
        lock.acquire()
    try:
        meta = entry.metadata()
        if meta is not None and entry.env_dir.is_dir():
            log(f"Using environment {key.name}, built by another process")
            _touch(entry, meta)
            return entry, meta
        return entry, _build(entry, key, build, title, log, project_dir, root)
    finally:
        lock.release()


def _build(
    entry: Entry,
    key: EnvKey,
    build: Builder,
    title: str,
    log: Callable[[str], None],
    project_dir: Path,
    root: Path,
) -> dict[str, Any]:
    if entry.folder.exists():
        log(f"Rebuilding environment {key.name}: an earlier build did not finish")
        entry.marker.unlink(missing_ok=True)
        shutil.rmtree(entry.env_dir, ignore_errors=True)
    else:
        why = explain_new(root, key, project_dir)
        log(f"Creating environment {key.name}" + (f" ({why})" if why else ""))
    entry.folder.mkdir(parents=True, exist_ok=True)
    build_log = BuildLog(entry.log_path, title, log)
    build_log.note(f"# environment {key.name}\n# inputs: {json.dumps(dict(key.inputs))}")
    try:
        with build_log:
            extra = dict(build(entry.env_dir, build_log))
    except BaseException:
        # A failed env is never reused; the log stays beside it for the user to read.
        shutil.rmtree(entry.env_dir, ignore_errors=True)
        raise
    now = time.time()
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "name": key.name,
        "manager": key.manager,
        "digest": key.digest,
        "inputs": dict(key.inputs),
        "project": str(project_dir),
        "env_dir": str(entry.env_dir),
        "created": now,
        "last_used": now,
        "build_seconds": round(build_log.elapsed, 3),
        **extra,
    }
    write_json_atomic(entry.marker, meta, indent=2)  # last: the entry is usable from here on
    log(f"Environment {key.name} ready in {build_log.elapsed:.1f}s")
    return meta


def _touch(entry: Entry, meta: dict[str, Any]) -> None:
    now = time.time()
    last = meta.get("last_used")
    if isinstance(last, (int, float)) and now - last < _TOUCH_AFTER:
        return
    meta["last_used"] = now
    # A read-only cache still works; only pruning by age is less precise.
    with contextlib.suppress(OSError):
        write_json_atomic(entry.marker, meta, indent=2)


def iter_entries(root: Path | None = None) -> Iterator[Entry]:
    root = root or envs_root()
    try:
        folders = sorted(root.iterdir())
    except OSError:
        return
    for folder in folders:
        if not folder.name.startswith(".") and folder.is_dir():
            yield Entry(folder)


def explain_new(root: Path, key: EnvKey, project_dir: Path) -> str:
    """Why this project needs a new environment: what changed since its last one."""
    previous: tuple[float, dict[str, Any]] | None = None
    for entry in iter_entries(root):
        meta = entry.metadata()
        if meta is None or meta.get("project") != str(project_dir):
            continue
        if meta.get("manager") != key.manager or meta.get("name") == key.name:
            continue
        used = float(meta.get("last_used") or 0)
        if previous is None or used > previous[0]:
            previous = (used, meta)
    if previous is None:
        return ""
    old = previous[1].get("inputs") or {}
    changes = [
        _describe_change(k, old.get(k), key.inputs.get(k))
        for k in sorted(set(old) | set(key.inputs))
        if old.get(k) != key.inputs.get(k)
    ]
    if not changes:
        return ""
    return f"changed since {previous[1].get('name')}: {'; '.join(changes)}"


def _describe_change(name: str, old: Any, new: Any) -> str:
    """One readable clause: which dependencies, files or interpreter differ."""
    if name == "spec" and isinstance(old, dict) and isinstance(new, dict):
        parts = []
        for field in sorted(set(old) | set(new)):
            before, after = old.get(field) or [], new.get(field) or []
            added = [x for x in after if x not in before]
            removed = [x for x in before if x not in after]
            if added or removed:
                items = [f"+{x}" for x in added] + [f"-{x}" for x in removed]
                parts.append(f"{field} {' '.join(items)}")
        return ", ".join(parts) or "spec"
    if name == "files" and isinstance(old, list) and isinstance(new, list):
        before, after = dict(map(tuple, old)), dict(map(tuple, new))
        touched = [f for f in sorted(set(before) | set(after)) if before.get(f) != after.get(f)]
        return f"file(s) {', '.join(touched)} changed"
    if name == "interpreter" and isinstance(old, list) and isinstance(new, list):
        return f"Python {old[-1]} -> {new[-1]}"
    return name


@dataclass
class PruneResult:
    entry: Entry
    removed: bool
    reason: str  # why it was (or would be) removed, or why it was kept
    size: int


def prune(
    older_than_days: float | None,
    remove_all: bool,
    dry_run: bool,
    root: Path | None = None,
) -> list[PruneResult]:
    """Remove entries unused for ``older_than_days`` (or all). Entries being built are kept."""
    from filelock import FileLock, Timeout

    root = root or envs_root()
    cutoff = time.time() - (older_than_days or 0) * 86400
    results: list[PruneResult] = []
    for entry in iter_entries(root):
        complete = entry.metadata() is not None
        if not remove_all and entry.last_used() >= cutoff:
            continue
        reason = "all" if remove_all else f"unused for more than {older_than_days:g} days"
        if not complete:
            reason = "incomplete build"
        size = folder_size(entry.folder)
        if dry_run:
            results.append(PruneResult(entry, False, reason, size))
            continue
        lock = FileLock(str(lock_path(root, entry.name)))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            results.append(PruneResult(entry, False, "being built now, kept", size))
            continue
        try:
            entry.marker.unlink(missing_ok=True)  # first, so nobody starts using it
            shutil.rmtree(entry.folder, ignore_errors=True)
        finally:
            lock.release()
        results.append(PruneResult(entry, True, reason, size))
    return results
