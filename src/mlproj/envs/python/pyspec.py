"""python_env.yaml: parsing, normalising, and the requirement files it references."""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlproj.errors import ExecutionException, one_line

_KEYS = ("python", "build_dependencies", "dependencies")
# Options whose value names another requirement file (pip and uv syntax).
_FILE_OPTIONS = {"-r": "r", "--requirement": "r", "-c": "c", "--constraint": "c"}


@dataclass(frozen=True)
class PythonEnvSpec:
    """What a Python virtual environment must contain.

    ``python`` is a version request (``3.10``, ``3.10.13``, ``>=3.9``) or None for "the
    interpreter running mlproj". Dependencies are pip requirement lines, kept as written.
    """

    python: str | None
    build_dependencies: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    source: str = "default"  # file the spec came from, for messages
    # conda package names tried from PyPI; the ones that fail to install are dropped.
    optional_dependencies: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "build_dependencies": list(self.build_dependencies),
            "dependencies": list(self.dependencies),
            "optional_dependencies": list(self.optional_dependencies),
        }


def read_yaml_file(path: Path) -> tuple[str, Any]:
    """The text of an environment file and its YAML data ({} when empty).

    A file that cannot be read or is not YAML is an ExecutionException naming it.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ExecutionException(f"{path}: cannot read the file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ExecutionException(f"{path}: not valid YAML: {one_line(str(exc))}") from None
    return text, {} if data is None else data


def load_python_env(path: Path) -> PythonEnvSpec:
    """Parse a python_env.yaml file; every mistake becomes one clear ExecutionException."""
    text, data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ExecutionException(
            f"{path}: expected a mapping with keys {', '.join(_KEYS)}, got {type(data).__name__}"
        )
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise ExecutionException(
            f"{path}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(_KEYS)}"
        )
    return PythonEnvSpec(
        python=_python_value(path, data.get("python"), text),
        build_dependencies=_requirement_list(path, "build_dependencies", data),
        dependencies=_requirement_list(path, "dependencies", data),
        source=str(path),
    )


def _python_value(path: Path, value: object, text: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        # YAML reads 3.10 as the float 3.1: the intended version is lost, so refuse it.
        written = re.search(r"^python:\s*([0-9][0-9.]*)\s*(#.*)?$", text, re.MULTILINE)
        literal = written.group(1) if written else str(value)
        raise ExecutionException(
            f"{path}: python: {literal} is read by YAML as the number {value!r}; quote the "
            f'version: python: "{literal}"'
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ExecutionException(
            f'{path}: python: expected a version string such as "3.10", got {value!r}'
        )
    return value.strip()


def _requirement_list(path: Path, key: str, data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ExecutionException(f"{path}: {key}: expected a list of requirements, got {value!r}")
    lines: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ExecutionException(f"{path}: {key}: expected requirement strings, got {item!r}")
        text = str(item).strip()
        if text and not text.startswith("#"):
            lines.append(text)
    return tuple(lines)


def install_args(lines: tuple[str, ...]) -> list[str]:
    """Requirement lines as ``pip install`` / ``uv pip install`` arguments.

    Lines are passed on the command line (not through a temporary requirements file) and the
    installer runs in the project folder, so ``-r file`` and ``./pkg`` resolve against the
    project as MLflow resolves them. Option lines are split like a shell would; requirement
    lines stay one argument each (environment markers contain quotes and spaces).
    """
    args: list[str] = []
    for line in lines:
        if line.startswith("-"):
            args.extend(shlex.split(line, comments=True))
        else:
            args.append(line)
    return args


def referenced_files(lines: tuple[str, ...], base: Path) -> list[Path]:
    """Requirement/constraint files named by ``lines``, followed recursively (pip resolves a
    nested ``-r`` against the file that contains it)."""
    found: list[Path] = []
    seen: set[Path] = set()

    def visit(option_lines: list[str], folder: Path) -> None:
        for name in _file_refs(option_lines):
            file = (folder / name).resolve()
            if file in seen:
                continue
            seen.add(file)
            found.append(file)
            try:
                text = file.read_text(encoding="utf-8")
            except OSError:
                continue  # reported by the installer with its own message
            visit(text.splitlines(), file.parent)

    visit(list(lines), base)
    return found


def _file_refs(lines: list[str]) -> list[str]:
    names: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line.startswith("-"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, word in enumerate(words):
            if word in _FILE_OPTIONS and i + 1 < len(words):
                names.append(words[i + 1])
            for opt in ("-r", "-c"):
                if word.startswith(opt) and len(word) > 2 and not word.startswith("--"):
                    names.append(word[2:])
            for opt in ("--requirement=", "--constraint="):
                if word.startswith(opt):
                    names.append(word[len(opt) :])
    return names


def files_digest(files: list[Path], base: Path) -> list[list[str]]:
    """(path, sha256 of contents) pairs for the cache key; paths inside ``base`` are relative
    so two projects with equal files share an environment; a missing file hashes 'missing'."""
    out: list[list[str]] = []
    for file in files:
        try:
            shown = str(file.relative_to(base.resolve()))
        except ValueError:
            shown = str(file)
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError:
            digest = "missing"
        out.append([shown, digest])
    return out


def has_local_paths(lines: tuple[str, ...]) -> bool:
    """True when a requirement installs from a folder, whose meaning depends on the project."""
    for line in lines:
        words = install_args((line,))
        for word in words:
            if word.startswith((".", "/", "~", "file:")) or word in ("-e", "--editable"):
                return True
    return False
