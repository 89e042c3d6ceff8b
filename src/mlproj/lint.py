"""``mlproj check``: every problem run-time validation would find, for every entry point, plus
warnings for the mistakes people make in MLproject files, each with its file and line."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.spec.params import check_command
from mlproj.spec.problems import Problem, Severity, SpecError
from mlproj.spec.project import (
    EntryPoint,
    Key,
    Project,
    SpecFile,
    absolute_path,
    expand_user,
    inspect_project,
)
from mlproj.spec.types import has_scheme

# Shell or cmd.exe expansions nobody performs in a docker_env volume: MLflow passes the text
# to `docker run -v` as written.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_UNEXPANDED = re.compile(r"\$\(\s*pwd\s*\)|\$\{PWD\}|\$PWD\b|%cd%", re.IGNORECASE)


def check_project(directory: str | Path, entry_point: str | None = None) -> list[Problem]:
    """Every problem of the project in ``directory`` (of one entry point, when given), errors
    first, each in file order."""
    project, errors = inspect_project(directory)
    problems = [error.problem for error in errors]
    if project is None:
        return problems
    spec = (
        SpecFile(project.spec_path, project.spec_path.read_bytes()) if project.spec_path else None
    )
    wanted = _entry_points(project, entry_point, problems)
    problems += [w for w in project.warnings if w.entry_point is None or w.entry_point in wanted]
    for name, error in project.invalid_entry_points.items():
        if name in wanted:
            problems.append(error.problem)
    for entry in wanted.values():
        problems += _entry_point_problems(project, spec, entry)
    problems += _environment_problems(project, spec)
    order = {"error": 0, "warning": 1}
    return sorted(problems, key=lambda p: (order[p.severity], str(p.file), p.line or 0))


def _entry_points(
    project: Project, entry_point: str | None, problems: list[Problem]
) -> dict[str, EntryPoint | None]:
    """The entry points to check; an unknown ``entry_point`` is an error problem."""
    if entry_point is None:
        found: dict[str, EntryPoint | None] = dict(project.entry_points)
        found.update(dict.fromkeys(project.invalid_entry_points))
        return found
    if entry_point in project.invalid_entry_points:
        return {entry_point: None}
    try:
        return {entry_point: project.get_entry_point(entry_point)}
    except ExecutionException as exc:
        problems.append(Problem("error", "unknown-entry-point", exc.message, project.spec_path))
        return {}


def _at(
    spec: SpecFile | None,
    severity: Severity,
    code: str,
    keys: Sequence[Key],
    message: str,
    entry_point: str | None = None,
) -> Problem:
    if spec is None:  # a folder without an MLproject file
        return Problem(severity, code, message, entry_point=entry_point)
    return spec.problem(severity, code, keys, message, entry_point)


def _entry_point_problems(
    project: Project, spec: SpecFile | None, entry: EntryPoint | None
) -> list[Problem]:
    if entry is None:
        return []  # its error is reported already
    keys: tuple[Key, ...] = ("entry_points", entry.name)
    declared = entry.name in project.entry_points
    found: list[Problem] = []
    try:
        check_command(entry, project.spec_path, project.directory)
    except ExecutionException as exc:
        where = (*keys, "command") if declared else ()
        return [_at(spec, "error", "placeholder", where, exc.message, entry.name)]
    broken = _option_after_line_break(entry.command)
    if broken is not None:
        found.append(
            _at(
                spec,
                "warning",
                "command-line-break",
                (*keys, "command"),
                f"line {broken[0]} of the command ({broken[1]!r}) starts with an option, but "
                "the line break before it ends the shell command, so the shell runs it as a "
                "command of its own (as under MLflow); end the line before with ` \\`, or, in "
                "a `>` block, indent every line alike (lines indented further keep their "
                "breaks)",
                entry.name,
            )
        )
    used = {name for _, name, _, _ in string.Formatter().parse(entry.command) if name is not None}
    for name, param in entry.parameters.items():
        pkeys = (*keys, "parameters", name)
        if name not in used:
            found.append(
                _at(
                    spec,
                    "warning",
                    "unused-parameter",
                    pkeys,
                    f"parameter {name!r} is declared but the command never uses {{{name}}}, "
                    "so its value reaches the command nowhere (MLflow appends only undeclared "
                    "parameters)",
                    entry.name,
                )
            )
        if param.type == "float" and _whole_number(param.default):
            found.append(
                _at(
                    spec,
                    "warning",
                    "whole-float-default",
                    (*pkeys, "default"),
                    f"float parameter {name!r} has the whole-number default {param.default!r}: "
                    "if the script reads it with int() (or argparse type=int), a value such as "
                    "0.5 or 1e3 makes it fail; declare `type: int` for a count",
                    entry.name,
                )
            )
        if (
            param.type == "path"
            and isinstance(param.default, str)
            and not has_scheme(param.default)
        ):
            target = absolute_path(project.directory / expand_user(param.default))
            if not target.exists():
                found.append(
                    _at(
                        spec,
                        "warning",
                        "missing-path-default",
                        (*pkeys, "default"),
                        f"the default {param.default!r} of path parameter {name!r} does not "
                        f"exist ({target}): a run that does not give {name!r} fails",
                        entry.name,
                    )
                )
    return found


# What may end a line and carry the shell command on to the next one.
_CONTINUES = ("\\", "|", "&&", "||", "(", "{", "[")


def _option_after_line_break(command: str) -> tuple[int, str] | None:
    """The first line (1-based, and its text) that starts with ``-`` right after a line break
    that ends a shell command: ``python train.py\\n  --epochs 3`` runs ``--epochs 3`` alone.
    Seen in public files as a ``>`` block whose option lines are indented more than the first
    (YAML keeps those breaks)."""
    lines = command.split("\n")
    previous = lines[0].rstrip()
    for number, line in enumerate(lines[1:], start=2):
        text = line.strip()
        if not text:
            continue
        if text.startswith("-") and previous and not previous.endswith(_CONTINUES):
            return number, text
        previous = line.rstrip()
    return None


def _whole_number(value: object) -> bool:
    """Written without a decimal point (``50``, ``"50"``): the command gets ``50``, which a
    script's ``int()`` accepts until someone passes ``0.5``. A default written ``1.0`` or
    ``.0`` reaches the command as ``1.0``, which ``int()`` already refuses, so its script
    reads floats: no warning (seen in public MLproject files)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, str):
        return re.fullmatch(r"\s*[+-]?\d+\s*", value) is not None
    return False


def _environment_problems(project: Project, spec: SpecFile | None) -> list[Problem]:
    found: list[Problem] = []
    if project.docker_env is not None:
        for index, volume in enumerate(project.docker_env.volumes):
            if _UNEXPANDED.search(volume):
                found.append(
                    _at(
                        spec,
                        "warning",
                        "unexpanded-volume",
                        ("docker_env", "volumes", index),
                        f"volume {volume!r}: nobody expands $(pwd), ${{PWD}} or %cd% here "
                        "(MLflow passes the text to docker as written); use an absolute path, "
                        "or -A volume=... on the command line",
                    )
                )
    if project.env_file is None:
        return found
    # What is wrong inside the env file points into it (a folder may have no MLproject at
    # all: python_env.yaml or conda.yaml found by default); a file that cannot be read or
    # parsed points at the key of the MLproject that names it.
    env_key: tuple[Key, ...] = next(
        ((key,) for key in ("python_env", "conda_env") if spec and spec.line((key,))), ()
    )
    try:
        env_spec = SpecFile(project.env_file, project.env_file.read_bytes())
    except OSError as exc:
        message = f"cannot read {project.env_file}: {exc.strerror or exc}"
        return [*found, _at(spec, "error", "invalid-env-file", env_key, message)]
    if project.env_type == "python_env":
        found += _python_env_problems(project, spec, env_key, env_spec)
    elif project.env_type == "conda_env":
        found += _conda_problems(project, spec, env_key, env_spec)
    return found


def _python_env_problems(
    project: Project, spec: SpecFile | None, keys: tuple[Key, ...], env_spec: SpecFile
) -> list[Problem]:
    from mlproj.envs.python.pyspec import load_python_env, referenced_files

    assert project.env_file is not None
    try:
        env = load_python_env(project.env_file)
    except ExecutionException as exc:
        return [_at(spec, "error", "invalid-env-file", keys, exc.message)]
    found = [
        env_spec.problem(
            "error",
            "missing-env-file",
            _naming(env.dependencies, file),
            f"{project.env_file.name} refers to {file}, which does not exist",
        )
        for file in referenced_files(env.dependencies, project.env_file.parent)
        if not file.exists()
    ]
    found += _python_version_problems(env_spec, ("python",), env.python, project.env_file)
    return found


def _naming(dependencies: Sequence[str], file: Path) -> tuple[Key, ...]:
    """The dependency line that names ``file`` (``-r requirements.txt``); the whole list for
    a file named inside another requirements file."""
    index = next((i for i, line in enumerate(dependencies) if file.name in line), None)
    return ("dependencies",) if index is None else ("dependencies", index)


def _conda_problems(
    project: Project, spec: SpecFile | None, keys: tuple[Key, ...], env_spec: SpecFile
) -> list[Problem]:
    from mlproj.envs.conda import find_conda
    from mlproj.envs.python.condaspec import PYPI_NAMES, convert_conda_file

    assert project.env_file is not None
    try:
        converted = convert_conda_file(project.env_file)
    except ExecutionException as exc:
        return [_at(spec, "error", "invalid-env-file", keys, exc.message)]
    if find_conda() is not None:
        return []  # conda builds it as written
    deps: tuple[Key, ...] = ("dependencies",)
    found: list[Problem] = []
    if converted.dropped:
        found.append(
            env_spec.problem(
                "warning",
                "conda-packages-dropped",
                deps,
                f"conda is not installed, so {project.env_file.name} is built with uv from PyPI, "
                f"without these conda-only packages: {', '.join(converted.dropped)}",
            )
        )
    tried = {m.group(0) for d in converted.spec.optional_dependencies if (m := _NAME.match(d))}
    renamed = [f"{conda} (as {pypi})" for conda, pypi in PYPI_NAMES.items() if pypi in tried]
    if renamed:
        found.append(
            env_spec.problem(
                "warning",
                "conda-packages-renamed",
                deps,
                f"conda is not installed; these packages are installed from PyPI under another "
                f"name: {', '.join(renamed)}",
            )
        )
    if converted.spec.optional_dependencies:
        found.append(
            env_spec.problem(
                "warning",
                "conda-packages-tried",
                deps,
                "conda is not installed; these conda packages are tried from PyPI under the "
                "same name and dropped if that fails: "
                + ", ".join(converted.spec.optional_dependencies),
            )
        )
    found += _python_version_problems(env_spec, deps, converted.spec.python, project.env_file)
    return found


def _python_version_problems(
    env_spec: SpecFile, keys: tuple[Key, ...], request: str | None, env_file: Path
) -> list[Problem]:
    if request is None:
        return []
    from mlproj.envs.cache import envs_root
    from mlproj.envs.python.interpreters import find_interpreter

    try:
        found = find_interpreter(request, envs_root() / ".interpreters.json")
    except ExecutionException as exc:
        return [
            env_spec.problem("error", "invalid-python", keys, f"{env_file.name}: {exc.message}")
        ]
    if found is not None:
        return []
    return [
        env_spec.problem(
            "warning",
            "python-download",
            keys,
            f"{env_file.name} asks for python {request!r}, which no interpreter on this machine "
            "satisfies: the run downloads one first",
        )
    ]


def summary(problems: Sequence[Problem]) -> tuple[int, int]:
    errors = sum(1 for p in problems if p.severity == "error")
    return errors, len(problems) - errors


__all__ = ["Problem", "SpecError", "check_project", "summary"]
