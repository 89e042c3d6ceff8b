"""The MLproject file: loading, validation and entry points.

``load_project`` accepts every MLproject that ``mlflow run`` accepts. A malformed file becomes a
:class:`~mlproj.spec.problems.SpecError` naming the file, the key path, the offending value and
(when the YAML parser knows it) the line. Validation is per entry point, as in MLflow: a
mistake inside one entry point is raised only when that entry point is run, and shows as a
warning otherwise. Suspicious but valid spellings (an unknown type, a misspelled key) are kept
as warnings on the project. :func:`inspect_project` collects every problem instead of raising
the first, for ``mlproj check``. The value rules of the parameter types are in
:mod:`mlproj.spec.types`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from mlproj import yaml_cache
from mlproj.errors import ExecutionException, one_line
from mlproj.records import field, record, replace
from mlproj.spec.problems import Problem, SpecError, closest
from mlproj.spec.types import (
    KNOWN_TYPES,
    NUMERIC_TYPES,
    InvalidValue,
    Parameter,
    canonical_type,
    check_value,
    has_scheme,
    show_number,
    show_value,
    typed_text,
)

if TYPE_CHECKING:
    import yaml

__all__ = [
    "DockerEnv",
    "EntryPoint",
    "InvalidValue",
    "Parameter",
    "Project",
    "absolute_path",
    "check_value",
    "expand_user",
    "has_scheme",
    "inspect_project",
    "load_project",
    "show_value",
]

EnvType = Literal["python_env", "conda_env", "docker", "none"]

TOP_LEVEL_KEYS = (
    "name",
    "entry_points",
    "conda_env",
    "python_env",
    "docker_env",
    "databricks_spark_job",
)
ENTRY_POINT_KEYS = ("command", "parameters")
PARAMETER_KEYS = ("type", "default", "choices", "min", "max", "help")
_ENV_FIELDS = ("docker_env", "python_env", "conda_env")
_SCRIPT_RUNNERS = {".py": "python", ".sh": "bash"}
DEFAULT_ENV_FILES: tuple[tuple[str, EnvType], ...] = (
    ("python_env.yaml", "python_env"),
    ("conda.yaml", "conda_env"),
)
_PYTHON_ENV_KEYS = frozenset({"python", "build_dependencies", "dependencies"})
# Keys people write for what a valid key means (`description:` is common in public files).
_KEY_SYNONYMS = {"description": "help", "desc": "help", "doc": "help"}


def _loader() -> Any:
    """The C loader is several times faster; the pure-Python one when libyaml is absent.
    PyYAML is imported only here and where a file must be parsed: a warm run reads the
    MLproject from :mod:`mlproj.yaml_cache` and never imports it."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


Key = str | int  # one step of a key path: a mapping key or a list index


@record(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)  # declaration order
    spec_path: Path | None = None  # the MLproject file it comes from, for messages


@record(frozen=True)
class DockerEnv:
    image: str
    volumes: tuple[str, ...] = ()
    # "NAME" copies the host value; ("NAME", "value") sets it.
    environment: tuple[str | tuple[str, str], ...] = ()


@record(frozen=True)
class Project:
    directory: Path  # absolute
    spec_path: Path | None  # the MLproject file, None when the folder has none
    name: str | None
    entry_points: Mapping[str, EntryPoint]  # the valid ones
    env_type: EnvType
    env_file: Path | None  # absolute path of python_env / conda yaml, when there is one
    docker_env: DockerEnv | None = None
    databricks_spark_job: Mapping[str, Any] | None = None  # kept as written; Databricks only
    # Entry points with a mistake: the error is raised when that entry point is run.
    invalid_entry_points: Mapping[str, SpecError] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()

    def describe(self) -> str:
        """Where the entry points come from, for messages."""
        if self.spec_path is not None:
            return str(self.spec_path)
        return f"{self.directory} (no MLproject file)"

    def warnings_for(self, entry_point: str) -> list[Problem]:
        """What to warn about when running ``entry_point``: the project's warnings, the entry
        point's own, and one line for each other entry point that could not be run."""
        found = [w for w in self.warnings if w.entry_point in (None, entry_point)]
        for name, error in self.invalid_entry_points.items():
            if name != entry_point:
                found.append(
                    replace(
                        error.problem,
                        severity="warning",
                        code="invalid-entry-point",
                        message=f"entry point {name!r} cannot run: {error.problem.message}",
                    )
                )
        return found

    def get_entry_point(self, name: str) -> EntryPoint:
        """A declared entry point, or ``python x.py`` / ``bash x.sh`` for a script in the folder."""
        if not isinstance(name, str):
            raise ExecutionException(f"Entry point name must be a string, got {name!r}")
        declared = self.entry_points.get(name)
        if declared is not None:
            return declared
        invalid = self.invalid_entry_points.get(name)
        if invalid is not None:
            raise invalid
        runner = _SCRIPT_RUNNERS.get(Path(name).suffix)
        if runner is None:
            raise ExecutionException(
                f"Could not find {name!r} among entry points {list(self.entry_points)} of "
                f"{self.describe()} or interpret it as a runnable script "
                f"(supported: {', '.join(_SCRIPT_RUNNERS)})"
            )
        script = absolute_path(self.directory / name)
        if not script.is_relative_to(self.directory):
            raise ExecutionException(
                f"Entry point {name!r} points outside the project folder {self.directory}; "
                "give a script path inside the project"
            )
        if not script.is_file():
            raise ExecutionException(
                f"Entry point {name!r} is not declared in {self.describe()} and there is no "
                f"script {script}; declare it under entry_points or check the name"
            )
        # "./" keeps a name like "-x.py" from being read as an option; braces are escaped
        # because the command is a str.format template.
        shown = f"./{name}" if name.startswith("-") else name
        quoted = shlex.quote(shown).replace("{", "{{").replace("}", "}}")
        return EntryPoint(name=name, command=f"{runner} {quoted}", spec_path=self.spec_path)


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised, like os.path.abspath: symlinks stay as the user named them."""
    return Path(os.path.abspath(path))  # noqa: PTH100 - Path.resolve() would follow symlinks


def expand_user(path: str | os.PathLike[str]) -> Path:
    """``~`` and ``~user`` expanded; left as is when there is no such home folder."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


# --------------------------------------------------------------------------------------------
# Loading.


def _key_path(keys: Sequence[Key]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _line_in(root: yaml.Node | None, keys: Sequence[Key]) -> int | None:
    """1-based line of the deepest node on ``keys``."""
    import yaml

    node = root
    line: int | None = None
    for key in keys:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


class SpecFile:
    """The MLproject being loaded: builds problems that point into it."""

    def __init__(self, path: Path, raw: bytes) -> None:
        self.path = path
        self.raw = raw
        self._root: yaml.Node | Literal[False] | None = False  # composed on first use

    def line(self, keys: Sequence[Key]) -> int | None:
        if self._root is False:
            import yaml

            try:
                self._root = yaml.compose(self.raw, Loader=_loader())
            except yaml.YAMLError:
                self._root = None
        return _line_in(self._root, keys) if keys else None

    def problem(
        self,
        severity: Literal["error", "warning"],
        code: str,
        keys: Sequence[Key],
        message: str,
        entry_point: str | None = None,
    ) -> Problem:
        return Problem(
            severity=severity,
            code=code,
            message=message,
            file=self.path,
            key=_key_path(keys),
            line=self.line(keys),
            entry_point=entry_point,
        )

    def error(
        self,
        keys: Sequence[Key],
        message: str,
        code: str = "invalid",
        entry_point: str | None = None,
    ) -> SpecError:
        return SpecError(self.problem("error", code, keys, message, entry_point))


def _type_name(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{show_value(value)}"


def _find_spec_file(directory: Path) -> Path | None:
    try:
        # A folder (or a symlink to one) named `mlproject` is not the spec (MLflow tries to
        # open it and fails with IsADirectoryError; a real project links one to src/).
        found = sorted(
            entry.name
            for entry in os.scandir(directory)
            if entry.name.lower() == "mlproject" and entry.is_file()
        )
    except OSError as exc:
        raise ExecutionException(f"Cannot read the project folder {directory}: {exc}") from None
    if len(found) > 1:
        raise ExecutionException(
            f"The project folder {directory} holds several MLproject files ({', '.join(found)}); "
            "keep exactly one"
        )
    return directory / found[0] if found else None


def _tab_at(raw: bytes, line: int, column: int) -> bool:
    lines = raw.decode("utf-8", errors="replace").splitlines()
    return line < len(lines) and lines[line][column : column + 1] == "\t"


def _char_code(character: object) -> str:
    if isinstance(character, bytes):
        return " ".join(f"0x{b:02x}" for b in character)
    if isinstance(character, int):
        return f"0x{character:02x}"
    return repr(character)


def _yaml_error(path: Path, message: str, line: int | None) -> SpecError:
    # The message carries the line (and column) itself; the key path is empty.
    return SpecError(Problem("error", "yaml", message, file=path, line=line))


def _load_yaml(path: Path, raw: bytes) -> Any:
    """The file's data; from the parse cache when this exact text was parsed before."""
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # PyYAML says where, below
    if text is not None:
        cached = yaml_cache.lookup(text)
        if cached is not yaml_cache.MISSING:
            return cached
    import yaml

    try:
        data = yaml.load(raw, Loader=_loader())  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if mark and _tab_at(raw, mark.line, mark.column):
            where += "; YAML indents with spaces, not tabs"
        raise _yaml_error(
            path, f"not valid YAML: {problem}{where}", mark.line + 1 if mark else None
        ) from None
    except yaml.reader.ReaderError as exc:  # bytes that are not text (bad UTF-8, control chars)
        line = raw[: max(exc.position, 0)].count(b"\n") + 1
        raise _yaml_error(
            path,
            f"not valid YAML: {exc.reason} ({_char_code(exc.character)}, line {line}); "
            "save the file as UTF-8 text",
            line,
        ) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(path, f"not valid YAML: {one_line(str(exc))}", None) from None
    if text is not None:
        yaml_cache.remember(text, data)
    return data


def _parse_yaml(path: Path) -> tuple[SpecFile, dict[Any, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExecutionException(f"Cannot read {path}: {exc.strerror or exc}") from None
    spec = SpecFile(path, raw)
    data = _load_yaml(path, raw)
    if data is None:
        raise spec.error(
            (),
            "the file is empty; write at least `entry_points:` with a `main` entry, "
            "or delete the file to run scripts by name",
        )
    if not isinstance(data, dict):
        raise spec.error(
            (), f"expected a mapping of keys (name, entry_points, ...), got {_type_name(data)}"
        )
    return spec, data


def _as_mapping(
    spec: SpecFile, keys: Sequence[Key], value: object, ep: str | None = None
) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise spec.error(keys, f"expected a mapping, got {_type_name(value)}", entry_point=ep)
    return value


def key_warnings(
    spec: SpecFile,
    keys: tuple[Key, ...],
    decl: Mapping[Any, Any],
    valid: Sequence[str],
    what: str,
    entry_point: str | None,
    *,
    near_misses_only: bool = False,
) -> list[Problem]:
    """Keys MLflow ignores that are most probably mistakes: ``type:int`` (no space after the
    colon in a ``{...}`` mapping), ``default=5``, ``defulat``."""
    found: list[Problem] = []
    for raw_key in decl:
        key = str(raw_key)
        if key in valid:
            continue
        head, sep, rest = next(
            ((key[:i], c, key[i + 1 :]) for i, c in enumerate(key) if c in ":="),
            (key, "", ""),
        )
        head = head.strip()
        if sep == ":" and head in valid:
            code = "flow-mapping-colon"
            message = (
                f"key {key!r} is one key to YAML, because a colon needs a space after it "
                f"inside {{...}}: this {what} has no {head!r}; write `{head}: {rest.strip()}`"
            )
        elif sep == "=" and head in valid:
            code = "misspelled-key"
            message = (
                f"key {key!r} is not {head!r}: YAML maps keys with a colon and a space; "
                f"write `{head}: {rest.strip()}`"
            )
        elif (synonym := _KEY_SYNONYMS.get(head.lower())) in valid:
            code = "unknown-key"
            message = (
                f"unknown key {key!r} in this {what}, ignored (harmless: MLflow ignores it "
                f"too); the key for a description is {synonym!r}"
            )
        else:
            suggestion = closest(head, valid, cutoff=0.7 if near_misses_only else 0.6)
            if suggestion is None and near_misses_only:
                continue
            code = "unknown-key" if suggestion is None else "misspelled-key"
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            valid_list = ", ".join(valid)
            message = f"unknown key {key!r} in this {what}, ignored (valid: {valid_list}){hint}"
        found.append(spec.problem("warning", code, (*keys, key), message, entry_point))
    return found


class _Reader:
    """One load: the spec file, the warnings found so far, and whether errors are raised at
    once (``load_project``) or collected (``inspect_project``)."""

    def __init__(self, spec: SpecFile, *, strict: bool) -> None:
        self.spec = spec
        self.strict = strict
        self.warnings: list[Problem] = []
        self.errors: list[SpecError] = []

    def fail(self, error: SpecError) -> None:
        if self.strict:
            raise error
        self.errors.append(error)

    # --- parameters ---------------------------------------------------------------------

    def parse_type(
        self, keys: tuple[Key, ...], name: str, value: object, ep: str, *, shorthand: bool
    ) -> str:
        if value is None:
            return "string"
        text = value if isinstance(value, str) else str(value)
        known = canonical_type(text) if isinstance(value, str) else None
        if known is not None:
            return known
        # MLflow gives no behaviour to a type it does not know: the value is plain text.
        known_list = ", ".join(KNOWN_TYPES)
        if shorthand:
            message = (
                f"`{name}: {text}` declares the type {text!r}, not a default: MLflow reads an "
                f"unknown type, so {name!r} is required and its value is passed as text; "
                f"for a default write `{name}: {{type: string, default: {text}}}` "
                f"(known types: {known_list})"
            )
        else:
            suggestion = closest(text, KNOWN_TYPES, cutoff=0.7)
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            message = (
                f"unknown parameter type {text!r}: its values are passed as text, as MLflow "
                f"does (known types: {known_list}){hint}"
            )
        self.warnings.append(self.spec.problem("warning", "unknown-type", keys, message, ep))
        return text

    def parse_bound(self, keys: tuple[Key, ...], value: object, ep: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.spec.error(
                keys, f"expected a number, got {_type_name(value)}", entry_point=ep
            )
        return value

    def parse_parameter(self, keys: tuple[Key, ...], name: str, decl: object, ep: str) -> Parameter:
        spec = self.spec
        if isinstance(decl, str):
            return Parameter(name=name, type=self.parse_type(keys, name, decl, ep, shorthand=True))
        if not isinstance(decl, Mapping):
            raise spec.error(
                keys,
                f"expected a type name (e.g. `{name}: float`) or a mapping "
                f"(e.g. `{name}: {{type: float, default: 0.5}}`), got {_type_name(decl)}",
                entry_point=ep,
            )
        self.warnings += key_warnings(spec, keys, decl, PARAMETER_KEYS, "parameter", ep)
        ptype = self.parse_type((*keys, "type"), name, decl.get("type"), ep, shorthand=False)
        low = self.parse_bound((*keys, "min"), decl.get("min"), ep)
        high = self.parse_bound((*keys, "max"), decl.get("max"), ep)
        if (low is not None or high is not None) and ptype not in NUMERIC_TYPES:
            bound_key = "min" if low is not None else "max"
            raise spec.error(
                (*keys, bound_key),
                f"min/max apply only to float and int parameters, not {ptype}",
                entry_point=ep,
            )
        if low is not None and high is not None and low > high:
            raise spec.error(
                (*keys, "min"),
                f"min {show_number(low)} is greater than max {show_number(high)}",
                entry_point=ep,
            )
        help_text = decl.get("help")
        if help_text is not None and not isinstance(help_text, str):
            raise spec.error(
                (*keys, "help"), f"expected a string, got {_type_name(help_text)}", entry_point=ep
            )
        param = Parameter(name=name, type=ptype, min=low, max=high, help=help_text)

        raw_choices = decl.get("choices")
        if raw_choices is not None:
            if not isinstance(raw_choices, list) or not raw_choices:
                raise spec.error(
                    (*keys, "choices"),
                    f"expected a non-empty list, got {_type_name(raw_choices)}",
                    entry_point=ep,
                )
            for index, choice in enumerate(raw_choices):
                try:
                    typed_text(ptype, choice)
                except InvalidValue as exc:
                    raise spec.error(
                        (*keys, "choices", index), exc.problem, entry_point=ep
                    ) from None
            param = replace(param, choices=tuple(raw_choices))

        default = decl.get("default")
        if default is not None:
            try:
                check_value(param, default)
            except InvalidValue as exc:
                raise spec.error((*keys, "default"), exc.problem, entry_point=ep) from None
            param = replace(param, default=default)
        return param

    # --- entry points -------------------------------------------------------------------

    def parse_entry_point(self, name: str, decl: object) -> EntryPoint:
        spec = self.spec
        keys: tuple[Key, ...] = ("entry_points", name)
        if not isinstance(decl, Mapping):
            raise spec.error(
                keys,
                f"expected a mapping with `command` (and `parameters`), got {_type_name(decl)}",
                entry_point=name,
            )
        self.warnings += key_warnings(spec, keys, decl, ENTRY_POINT_KEYS, "entry point", name)
        command = decl.get("command")
        if command is None:
            near = [str(k) for k in decl if closest(str(k), ["command"]) and k != "command"]
            hint = f" (is {near[0]!r} a misspelling of it?)" if near else ""
            raise spec.error(
                keys,
                f"missing `command`{hint}: add the shell command this entry point runs",
                entry_point=name,
            )
        if not isinstance(command, str):
            raise spec.error(
                (*keys, "command"),
                f"expected a string, got {_type_name(command)}",
                entry_point=name,
            )
        if not command.strip():
            raise spec.error((*keys, "command"), "the command is empty", entry_point=name)
        params: dict[str, Parameter] = {}
        raw_params = _as_mapping(spec, (*keys, "parameters"), decl.get("parameters"), name)
        for pname, pdecl in raw_params.items():
            pkeys = (*keys, "parameters", str(pname))
            if not isinstance(pname, str) or not pname:
                raise spec.error(
                    pkeys,
                    f"parameter names must be text, got {show_value(pname)}",
                    entry_point=name,
                )
            params[pname] = self.parse_parameter(pkeys, pname, pdecl, name)
        return EntryPoint(name=name, command=command, parameters=params, spec_path=spec.path)

    def parse_entry_points(
        self, value: object
    ) -> tuple[dict[str, EntryPoint], dict[str, SpecError]]:
        valid: dict[str, EntryPoint] = {}
        invalid: dict[str, SpecError] = {}
        try:
            declared = _as_mapping(self.spec, ("entry_points",), value)
        except SpecError as error:
            self.fail(error)
            return valid, invalid
        for ep_name, decl in declared.items():
            if not isinstance(ep_name, str) or not ep_name:
                self.fail(
                    self.spec.error(
                        ("entry_points", str(ep_name)),
                        f"entry point names must be text, got {ep_name!r}",
                    )
                )
                continue
            # Only this entry point is affected by a mistake in it, as in MLflow.
            before = len(self.warnings)
            try:
                valid[ep_name] = self.parse_entry_point(ep_name, decl)
            except SpecError as error:
                invalid[ep_name] = error
                del self.warnings[before:]  # the error says what matters about it
        return valid, invalid

    # --- environment --------------------------------------------------------------------

    def parse_docker_env(self, value: object) -> DockerEnv:
        spec = self.spec
        keys: tuple[Key, ...] = ("docker_env",)
        decl = _as_mapping(spec, keys, value)
        image = decl.get("image")
        if not isinstance(image, str) or not image.strip():
            raise spec.error(
                (*keys, "image") if "image" in decl else keys,
                f"expected a non-empty image name (e.g. `image: python:3.11-slim`), "
                f"got {_type_name(image)}",
            )
        volumes = decl.get("volumes") or []
        if not isinstance(volumes, list):
            raise spec.error((*keys, "volumes"), f"expected a list, got {_type_name(volumes)}")
        for index, volume in enumerate(volumes):
            if not isinstance(volume, str) or not volume:
                raise spec.error(
                    (*keys, "volumes", index),
                    'expected a string such as "/host/path:/container/path", '
                    f"got {_type_name(volume)}",
                )
        raw_env = decl.get("environment") or []
        if not isinstance(raw_env, list):
            raise spec.error((*keys, "environment"), f"expected a list, got {_type_name(raw_env)}")
        environment: list[str | tuple[str, str]] = []
        for index, item in enumerate(raw_env):
            environment.append(_parse_docker_variable(spec, (*keys, "environment", index), item))
        return DockerEnv(image=image, volumes=tuple(volumes), environment=tuple(environment))

    def python_env_or_conda(self, keys: tuple[Key, ...], path: Path) -> EnvType:
        """``python_env`` unless the file holds a conda spec (seen in public projects)."""
        if not _holds_conda_spec(path):
            return "python_env"
        self.warnings.append(
            self.spec.problem(
                "warning",
                "conda-spec-in-python-env",
                keys,
                f"{path.name} holds a conda environment spec (channels / conda-style "
                "dependencies), not MLflow's python_env format; it is used as a conda_env "
                "(MLflow fails to read it unless --env-manager local is given)",
            )
        )
        return "conda_env"


def _holds_conda_spec(path: Path) -> bool:
    import yaml

    try:
        data = yaml.load(path.read_bytes(), Loader=_loader())  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError):
        return False  # the environment manager reports it, with its own context
    if not isinstance(data, Mapping) or not data:
        return False
    keys = set(map(str, data))
    if keys & {"channels", "name", "prefix"}:
        return True
    if keys - _PYTHON_ENV_KEYS:
        return False  # a python_env with a misspelled key: its own error says which
    dependencies = data.get("dependencies")
    return isinstance(dependencies, list) and any(
        isinstance(item, Mapping)
        or (isinstance(item, str) and re.match(r"python\s*=", item) is not None)
        for item in dependencies
    )


def _valid_env_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "=" not in name and "\0" not in name


def _parse_docker_variable(
    spec: SpecFile, keys: Sequence[Key], item: object
) -> str | tuple[str, str]:
    if _valid_env_name(item):
        return cast(str, item)
    # MLflow formats the value with str(), so numbers and booleans in YAML work there too.
    if (
        isinstance(item, list)
        and len(item) == 2
        and _valid_env_name(item[0])
        and isinstance(item[1], str | int | float)
    ):
        return (item[0], str(item[1]))
    raise spec.error(
        keys,
        'expected "NAME" (copied from the host) or [NAME, value], got ' + _type_name(item),
    )


def _env_file(spec: SpecFile, directory: Path, key: str, value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise spec.error((key,), f"expected a file name, got {_type_name(value)}")
    # Relative to the project folder; `../environment.yml` (outside it) is fine, as in MLflow.
    path = absolute_path(directory / expand_user(value))
    if not path.is_file():
        raise spec.error(
            (key,),
            f"file {value!r} not found (looked for {path}); create it or fix the name",
            code="missing-env-file",
        )
    return path


def _parse_name(spec: SpecFile, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise spec.error(("name",), f"expected a string, got {_type_name(value)}")


def load_project(path: str | Path) -> Project:
    """Read and validate the project in folder ``path`` (its MLproject file is optional).

    Raises the first project-wide error; a mistake inside an entry point is raised when that
    entry point is asked for (:meth:`Project.get_entry_point`)."""
    project, _ = _load(path, strict=True)
    assert project is not None  # strict loading raises instead
    return project


def inspect_project(path: str | Path) -> tuple[Project | None, list[SpecError]]:
    """Like :func:`load_project`, but project-wide errors are collected, not raised: the
    project as far as it could be read (None when the file is not readable YAML) and every
    project-wide error. Entry point errors are in ``project.invalid_entry_points``."""
    try:
        return _load(path, strict=False)
    except SpecError as error:
        return None, [error]


def _load(path: str | Path, *, strict: bool) -> tuple[Project | None, list[SpecError]]:
    directory = absolute_path(expand_user(path))
    if not directory.is_dir():
        raise ExecutionException(f"Project folder {directory} does not exist or is not a folder")
    spec_path = _find_spec_file(directory)
    if spec_path is None:
        return Project(directory, None, None, {}, *_default_env(directory)), []

    spec, data = _parse_yaml(spec_path)
    reader = _Reader(spec, strict=strict)
    reader.warnings += key_warnings(
        spec, (), data, TOP_LEVEL_KEYS, "MLproject file", None, near_misses_only=True
    )
    name: str | None = None
    try:
        name = _parse_name(spec, data.get("name"))
    except SpecError as error:
        reader.fail(error)
    entry_points, invalid = reader.parse_entry_points(data.get("entry_points"))

    spark = data.get("databricks_spark_job")
    if spark is not None and not isinstance(spark, Mapping):
        reader.fail(
            spec.error(("databricks_spark_job",), f"expected a mapping, got {_type_name(spark)}")
        )
        spark = None

    # `conda_env: ~` (null) declares nothing, as in MLflow.
    declared_envs = [key for key in _ENV_FIELDS if data.get(key) is not None]
    if len(declared_envs) > 1:
        reader.fail(
            spec.error(
                (declared_envs[1],),
                f"a project declares at most one environment, but {' and '.join(declared_envs)} "
                "are both set; keep one",
            )
        )
    docker: DockerEnv | None = None
    env_file: Path | None = None
    env_type: EnvType = "none"
    try:
        if "docker_env" in declared_envs:
            docker, env_type = reader.parse_docker_env(data["docker_env"]), "docker"
        elif "python_env" in declared_envs:
            env_file = _env_file(spec, directory, "python_env", data["python_env"])
            env_type = reader.python_env_or_conda(("python_env",), env_file)
        elif "conda_env" in declared_envs:
            env_type = "conda_env"
            env_file = _env_file(spec, directory, "conda_env", data["conda_env"])
        else:
            env_type, env_file = _default_env(directory)
            if env_type == "python_env" and env_file is not None:
                env_type = reader.python_env_or_conda((), env_file)
    except SpecError as error:
        reader.fail(error)
    project = Project(
        directory=directory,
        spec_path=spec_path,
        name=name,
        entry_points=entry_points,
        env_type=env_type,
        env_file=env_file,
        docker_env=docker,
        databricks_spark_job=dict(spark) if spark is not None else None,
        invalid_entry_points=invalid,
        warnings=tuple(sorted(reader.warnings, key=lambda w: w.line or 0)),
    )
    return project, reader.errors


def _default_env(directory: Path) -> tuple[EnvType, Path | None]:
    for file_name, env_type in DEFAULT_ENV_FILES:
        candidate = directory / file_name
        if candidate.is_file():
            return env_type, candidate
    return "none", None
