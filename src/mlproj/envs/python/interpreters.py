"""Find Python interpreters already on this machine and match a version request against them.

Looked at, in order of preference for equal versions: the interpreter running mlproj, PATH
(skipping pyenv/asdf shims, which fail outside their own shell setup), pyenv's versions folder
and uv's managed interpreters. Versions come from the folder name where it states one and
otherwise from running the interpreter once; the results are cached by path, size and mtime,
so a warm run starts no process here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.fsutil import write_json_atomic

Version = tuple[int, int, int]

_EXE_NAME = re.compile(r"^python3(\.\d+)?$|^python$")
_PLAIN = re.compile(r"^\d+(\.\d+){0,2}$")
_CLAUSE = re.compile(r"^(===|==|!=|>=|<=|~=|>|<)\s*(\d+(?:\.\d+){0,2})(\.\*)?$")
_SOURCE_RANK = {"current": 0, "PATH": 1, "pyenv": 2, "uv": 3}
_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


@dataclass(frozen=True)
class Interpreter:
    path: Path  # resolved (no symlinks), so one binary is one interpreter
    version: Version
    source: str  # current, PATH, pyenv, uv

    @property
    def version_text(self) -> str:
        return ".".join(str(n) for n in self.version)

    def describe(self) -> str:
        return f"{self.version_text} ({self.source}: {self.path})"


def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def uv_python_dir() -> Path:
    """Where ``uv python install`` puts interpreters (what ``uv python dir`` prints)."""
    configured = os.environ.get("UV_PYTHON_INSTALL_DIR")
    if configured:
        return Path(configured)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "uv" / "python"


def matcher(request: str | None, where: str = "python") -> Callable[[Version], bool]:
    """A predicate for ``3``, ``3.10``, ``3.10.13`` (prefixes) or specifiers like ``>=3.9,<3.12``.

    Raises ExecutionException naming ``where`` for a request it cannot read.
    """
    if request is None:
        return lambda _v: True
    text = request.strip()
    for prefix in ("cpython", "python"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :].lstrip("@-")
    if _PLAIN.match(text.removesuffix(".*")):
        want = _parts(text.removesuffix(".*"))
        return lambda v: v[: len(want)] == want
    clauses: list[Callable[[Version], bool]] = []
    for clause in text.split(","):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise ExecutionException(
                f"{where}: cannot read the Python version {request!r}; use a version such as "
                '"3.10" or "3.10.13", or a range such as ">=3.9,<3.13"'
            )
        clauses.append(_clause(match.group(1), _parts(match.group(2)), bool(match.group(3))))
    return lambda v: all(check(v) for check in clauses)


def _parts(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _clause(op: str, want: tuple[int, ...], wildcard: bool) -> Callable[[Version], bool]:
    padded = (*want, 0, 0, 0)[:3]
    if op in ("==", "===", "!=") and wildcard:
        n = len(want)
        return (lambda v: v[:n] == want) if op != "!=" else (lambda v: v[:n] != want)
    if op == "~=":
        head = want[:-1] if len(want) > 1 else want
        return lambda v: v >= padded and v[: len(head)] == head
    checks: dict[str, Callable[[Version], bool]] = {
        "==": lambda v: v == padded,
        "===": lambda v: v == padded,
        "!=": lambda v: v != padded,
        ">=": lambda v: v >= padded,
        "<=": lambda v: v <= padded,
        ">": lambda v: v > padded,
        "<": lambda v: v < padded,
    }
    return checks[op]


def find_interpreter(request: str | None, cache_file: Path | None = None) -> Interpreter | None:
    """The local interpreter for ``request``.

    No request: the interpreter running mlproj. A version (``3.10``, ``3.10.13``): the highest
    matching patch release. A range (``>=3.9``) or a bare major version: the interpreter
    running mlproj when it fits, else the highest that fits.
    """
    current = current_interpreter()
    if request is None:
        return current
    fits = matcher(request)
    text = request.strip()
    if fits(current.version) and (_PLAIN.match(text) is None or "." not in text):
        return current
    candidates = [i for i in discover(cache_file) if fits(i.version)]
    if not candidates:
        return None
    return min(candidates, key=lambda i: (tuple(-n for n in i.version), _SOURCE_RANK[i.source]))


def current_interpreter() -> Interpreter:
    version = (sys.version_info[0], sys.version_info[1], sys.version_info[2])
    return Interpreter(Path(sys.executable).resolve(), version, "current")


def discover(cache_file: Path | None = None) -> list[Interpreter]:
    """Every interpreter found, one entry per resolved binary."""
    probes = _ProbeCache(cache_file)
    found: dict[Path, Interpreter] = {}
    current = current_interpreter()
    found[current.path] = current
    pending: list[tuple[Path, str]] = []
    for exe, source, known in _candidates():
        try:
            real = exe.resolve(strict=True)
        except OSError:
            continue
        if real in found or not os.access(real, os.X_OK):
            continue
        version = known or probes.get(real)
        if version is None:
            pending.append((real, source))
            found[real] = Interpreter(real, (0, 0, 0), source)  # placeholder keeps order
            continue
        found[real] = Interpreter(real, version, source)
    if pending:
        results = probes.probe_all([p for p, _ in pending])
        for path, source in pending:
            version = results.get(path)
            if version is None:
                del found[path]
            else:
                found[path] = Interpreter(path, version, source)
        probes.save()
    return list(found.values())


def _candidates() -> Iterator[tuple[Path, str, Version | None]]:
    shims = {(pyenv_root() / "shims").resolve()}
    for entry_text in os.environ.get("PATH", "").split(os.pathsep):
        if not entry_text:
            continue
        path = Path(entry_text)
        if path.name == "shims" or path.resolve() in shims:
            continue  # shims need the shell setup of their tool; the real binaries are below
        try:
            # Plain names, filtered before sorting: /usr/bin holds thousands of entries.
            names = sorted(n for n in os.listdir(path) if _EXE_NAME.match(n))  # noqa: PTH208
        except OSError:
            continue
        for name in names:
            yield path / name, "PATH", None
    roots: list[tuple[Path, str, re.Pattern[str]]] = [
        (pyenv_root() / "versions", "pyenv", re.compile(r"^(\d+)\.(\d+)\.(\d+)$")),
        (uv_python_dir(), "uv", re.compile(r"^cpython-(\d+)\.(\d+)\.(\d+)-")),
    ]
    for root, source, pattern in roots:
        try:
            entries = sorted(root.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = pattern.match(entry.name)
            known = (int(match[1]), int(match[2]), int(match[3])) if match else None
            for exe_name in ("python3", "python"):
                exe = entry / "bin" / exe_name
                if exe.exists():
                    yield exe, source, known
                    break


class _ProbeCache:
    """Versions of interpreters that had to be run to learn them, keyed by path+size+mtime."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self.data: dict[str, list[object]] = {}
        self.dirty = False
        if file is not None:
            try:
                loaded = json.loads(file.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self.data = loaded
            except (OSError, ValueError):
                pass

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def get(self, path: Path) -> Version | None:
        entry = self.data.get(str(path))
        try:
            if entry is None or entry[:2] != self._stamp(path) or not entry[2]:
                return None
            text = str(entry[2])
        except OSError:
            return None
        major, minor, micro = (int(p) for p in text.split("."))
        return (major, minor, micro)

    def probe_all(self, paths: list[Path]) -> dict[Path, Version]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:
            versions = dict(zip(paths, pool.map(_probe, paths), strict=True))
        out: dict[Path, Version] = {}
        for path, version in versions.items():
            try:
                self.data[str(path)] = [*self._stamp(path), version or ""]
                self.dirty = True
            except OSError:
                continue
            if version:
                major, minor, micro = (int(p) for p in version.split("."))
                out[path] = (major, minor, micro)
        return out

    def save(self) -> None:
        if self.file is None or not self.dirty:
            return
        with contextlib.suppress(OSError):  # a cache: the next process probes again
            write_json_atomic(self.file, self.data)


def _probe(path: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(path), "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text if out.returncode == 0 and re.match(r"^\d+\.\d+\.\d+$", text) else None
