"""Typed parameters: validation, normalisation and the quoted command line.

Everything a user can get wrong about parameters is found by :func:`resolve_parameters`,
before any tracking run is opened. :func:`render_command` then only substitutes: every value
and every extra key reaches the shell through ``shlex.quote``.
"""

from __future__ import annotations

import shlex

# string.Formatter().parse itself, without importing string (its Template compiles a regex).
from _string import formatter_parser  # type: ignore[import-not-found]
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlproj.errors import ExecutionException
from mlproj.records import field, record
from mlproj.spec.project import EntryPoint, absolute_path, expand_user
from mlproj.spec.types import (
    NUMERIC_TYPES,
    InvalidValue,
    check_value,
    has_scheme,
    in_python_form,
    show_value,
)


@record(frozen=True)
class ResolvedParameters:
    declared: dict[str, str]  # name -> value as the command gets it, declaration order
    extra: dict[str, str]  # undeclared, in the user's order
    # path params as the command sees them (remote ones: the downloaded copy)
    local_paths: dict[str, Path] = field(default_factory=dict)
    download_dir: Path | None = None  # folder made for remote `path` values, when one was needed
    # Declared float/int params whose text is not the form Python writes for that number
    # (`50` for a float, `1e-3`, `010` for an int): see logged_at_end.
    number_forms: frozenset[str] = frozenset()

    def as_logged(self) -> dict[str, str]:
        """Every param of the run as MLflow logs it (the values unquoted)."""
        return {**self.declared, **self.extra}

    def logged_at_start(self) -> dict[str, str]:
        """The params to log when the run is opened: all but those of :meth:`logged_at_end`."""
        return {k: v for k, v in self.as_logged().items() if k not in self.number_forms}

    def deferred(self) -> dict[str, str]:
        """The params whose logging waits for the run's end (see :func:`logged_at_end`)."""
        return {k: v for k, v in self.declared.items() if k in self.number_forms}

    def logged_at_end(self, logged_by_project: Mapping[str, str]) -> dict[str, str]:
        return logged_at_end(self.deferred(), logged_by_project)


def logged_at_end(
    deferred: Mapping[str, str], logged_by_project: Mapping[str, str]
) -> dict[str, str]:
    """The params to log when the run ends: the deferred ones the project did not log itself.

    A project that reads ``50`` with ``float()`` and logs it writes ``50.0``, and a store
    refuses a second, different value for a param (MLflow issues 3536, 2820). So a number whose
    text differs from Python's form of it is logged only when the run ends, and only if the
    project has not logged that param meanwhile; the command still gets the text as given."""
    return {k: v for k, v in deferred.items() if k not in logged_by_project}


_BRACE_HINT = "write {{ and }} for a literal brace"


def _origin(entry_point: EntryPoint, spec_path: Path | None, project_dir: Path | None) -> str:
    """``entry point 'main' (/abs/MLproject)`` for messages."""
    origin = spec_path or entry_point.spec_path or project_dir
    suffix = f" ({origin})" if origin is not None else ""
    return f"entry point {entry_point.name!r}{suffix}"


def _placeholders(entry_point: EntryPoint, origin: str) -> list[tuple[str, str, str | None]]:
    try:
        parsed = list(formatter_parser(entry_point.command))
    except ValueError as exc:  # a lone "{" or "}"
        raise ExecutionException(
            f"The command of {origin} has an unmatched brace ({exc}): "
            f"{show_value(entry_point.command)}; {_BRACE_HINT}"
        ) from None
    return [(name, spec or "", conv) for _, name, spec, conv in parsed if name is not None]


def check_command(
    entry_point: EntryPoint, spec_path: Path | None = None, project_dir: Path | None = None
) -> None:
    """Every ``{placeholder}`` of the command names a declared parameter; braces balance."""
    origin = _origin(entry_point, spec_path, project_dir)
    for name, spec, conversion in _placeholders(entry_point, origin):
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        shown += "}"
        if name == "" or name.isdigit():
            problem = "positional placeholders cannot be filled; name a parameter"
        elif spec or conversion:
            problem = "format specs and conversions are not supported; write {name}"
        elif name not in entry_point.parameters:
            declared = ", ".join(repr(p) for p in entry_point.parameters) or "none"
            problem = (
                f"no parameter {name!r} is declared (declared: {declared}); declare it under "
                f"entry_points.{entry_point.name}.parameters"
            )
        else:
            continue
        raise ExecutionException(
            f"The command of {origin} uses the placeholder {shown}: {problem}, or {_BRACE_HINT}"
        )


def _local_path(text: str) -> str | None:
    """The filesystem path ``text`` names, or None when it is a remote URI."""
    if not has_scheme(text):
        return text
    parsed = urlparse(text)
    if parsed.scheme == "file" and parsed.netloc == "":
        return unquote(parsed.path)
    return None


def _make_download_dir(storage_dir: str | Path | None) -> Path:
    import tempfile

    try:
        if storage_dir is None:
            return Path(tempfile.mkdtemp(prefix="mlproj-params-"))
        base = absolute_path(expand_user(storage_dir))
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="mlproj-params-", dir=base))
    except OSError as exc:
        raise ExecutionException(
            f"Cannot create a folder for downloading remote 'path' parameters in "
            f"{storage_dir or tempfile.gettempdir()}: {exc.strerror or exc}; "
            "choose another --storage-dir"
        ) from None


def _download(uri: str, dest: Path, name: str, origin: str) -> Path:
    from mlproj.downloads import fetch_remote_path

    try:
        return fetch_remote_path(uri, dest)
    except ExecutionException as exc:  # already clear; say which parameter it was for
        raise ExecutionException(f"Parameter {name!r} of {origin}: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one clear message
        raise ExecutionException(
            f"Parameter {name!r} of {origin}: cannot download {show_value(uri)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _refuse_unstorable(name: str, value: object, origin: str) -> None:
    """No command line, environment variable or tracking store can carry a NUL character, and
    a store keeps text: bytes that are not UTF-8 (from a non-UTF-8 terminal) cannot be logged."""
    for text in (name, None if value is None else str(value)):
        if text is None:
            continue
        if "\x00" in text:
            raise ExecutionException(
                f"Parameter {name!r} of {origin} contains a NUL character (\\x00); remove it"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ExecutionException(
                f"Parameter {name!r} of {origin} is not valid UTF-8 text ({text!r}); "
                "use UTF-8 text (a UTF-8 terminal)"
            ) from None


def resolve_parameters(
    entry_point: EntryPoint,
    user_params: Mapping[str, object] | None,
    *,
    project_dir: Path,
    spec_path: Path | None = None,
    cwd: Path | None = None,
    storage_dir: str | Path | None = None,
) -> ResolvedParameters:
    """Check and normalise the values for ``entry_point``; download remote ``path`` values.

    A value of None counts as not given. A ``path`` default is relative to the project folder,
    a user-given path to ``cwd`` (default: the current folder).
    """
    origin = _origin(entry_point, spec_path, project_dir)
    check_command(entry_point, spec_path, project_dir)
    if user_params is not None and not isinstance(user_params, Mapping):
        raise ExecutionException(
            f"Parameters for {origin} must be a mapping of names to values, "
            f"got {type(user_params).__name__}"
        )
    given: dict[str, object] = {}
    for key, value in (user_params or {}).items():
        name = str(key)
        if not name:
            raise ExecutionException(f"A parameter for {origin} has an empty name")
        _refuse_unstorable(name, value, origin)
        if value is not None:
            given[name] = value

    params = entry_point.parameters
    missing = [n for n, p in params.items() if n not in given and p.default is None]
    if missing:
        listed = ", ".join(repr(n) for n in missing)
        raise ExecutionException(
            f"No value given for missing parameters: {listed} of {origin}; "
            f"pass them with -P NAME=VALUE"
        )

    caller_dir = Path(cwd) if cwd is not None else Path.cwd()
    declared: dict[str, str] = {}
    local_paths: dict[str, Path] = {}
    remote: list[tuple[int, str, str]] = []
    for index, (name, param) in enumerate(params.items()):
        from_user = name in given
        value = given[name] if from_user else param.default
        try:
            text = check_value(param, value)
        except InvalidValue as exc:
            what = "" if from_user else " (its default)"
            raise ExecutionException(
                f"Parameter {name!r} of {origin}{what}: {exc.problem}"
            ) from None
        declared[name] = text
        if param.type != "path":
            continue
        local = _local_path(text)
        if local is None:
            remote.append((index, name, text))  # logged as given, downloaded below
            continue
        base, base_name = (
            (caller_dir, "the current folder")
            if from_user
            else (
                project_dir,
                "the project folder",
            )
        )
        absolute = absolute_path(base / expand_user(local))
        if not absolute.exists():
            raise ExecutionException(
                f"Parameter {name!r} of {origin}: no such file or directory {show_value(text)} "
                f"(looked for {absolute}, relative to {base_name})"
            )
        declared[name] = str(absolute)
        local_paths[name] = absolute

    extra = {name: str(value) for name, value in given.items() if name not in params}

    download_dir: Path | None = None
    for index, name, uri in remote:  # only after every value passed its checks
        if download_dir is None:
            download_dir = _make_download_dir(storage_dir)
        local_paths[name] = _download(uri, download_dir / f"param_{index}", name, origin)
    number_forms = frozenset(
        name
        for name, param in params.items()
        if param.type in NUMERIC_TYPES and not in_python_form(param.type, declared[name])
    )
    return ResolvedParameters(declared, extra, local_paths, download_dir, number_forms)


def render_command(entry_point: EntryPoint, resolved: ResolvedParameters) -> str:
    """The shell command: placeholders filled with quoted values, then ``--key value`` extras."""
    origin = _origin(entry_point, None, None)
    check_command(entry_point)
    values: dict[str, str] = {}
    for name in entry_point.parameters:
        local = resolved.local_paths.get(name)
        value = str(local) if local is not None else resolved.declared.get(name)
        if value is None:
            raise ExecutionException(
                f"Parameter {name!r} of {origin} has no resolved value; "
                "call resolve_parameters first"
            )
        values[name] = shlex.quote(value)
    command = entry_point.command.format(**values)
    extras = "".join(f" --{shlex.quote(k)} {shlex.quote(v)}" for k, v in resolved.extra.items())
    return command + extras
