"""The MLproject file: loading, validation and entry points.

``load_project`` accepts every MLproject that ``mlflow run`` accepts, and turns every malformed
one into an :class:`ExecutionException` that names the file, the key path, the offending value
and (when the YAML parser knows it) the line. The value rules of the parameter types live here
too, because defaults and choices are checked when the file is loaded.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlparse

import yaml

from mlproj.errors import ExecutionException, one_line
from mlproj.redaction import mask_userinfo

ParamType = Literal["string", "float", "int", "path", "uri", "bool"]
EnvType = Literal["python_env", "conda_env", "docker", "none"]

PARAM_TYPES: tuple[str, ...] = ("string", "float", "int", "path", "uri", "bool")
# Spellings seen in real MLproject files; MLflow passes any type name through, so accepting
# these keeps such projects running.
_TYPE_ALIASES = {"str": "string", "integer": "int", "boolean": "bool", "double": "float"}
BOOL_TRUE = frozenset({"true", "yes", "1", "on"})
BOOL_FALSE = frozenset({"false", "no", "0", "off"})
_ENV_FIELDS = ("docker_env", "python_env", "conda_env")
_SCRIPT_RUNNERS = {".py": "python", ".sh": "bash"}
DEFAULT_ENV_FILES: tuple[tuple[str, EnvType], ...] = (
    ("python_env.yaml", "python_env"),
    ("conda.yaml", "conda_env"),
)

# The C loader is several times faster; fall back to the pure-Python one when libyaml is absent.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Key = str | int  # one step of a key path: a mapping key or a list index


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParamType = "string"
    default: Any = None  # None means required
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    help: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)  # declaration order
    spec_path: Path | None = None  # the MLproject file it comes from, for messages


@dataclass(frozen=True)
class DockerEnv:
    image: str
    volumes: tuple[str, ...] = ()
    # "NAME" copies the host value; ("NAME", "value") sets it.
    environment: tuple[str | tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Project:
    directory: Path  # absolute
    spec_path: Path | None  # the MLproject file, None when the folder has none
    name: str | None
    entry_points: Mapping[str, EntryPoint]
    env_type: EnvType
    env_file: Path | None  # absolute path of python_env / conda yaml, when there is one
    docker_env: DockerEnv | None = None
    databricks_spark_job: Mapping[str, Any] | None = None  # kept as written; Databricks only

    def describe(self) -> str:
        """Where the entry points come from, for messages."""
        if self.spec_path is not None:
            return str(self.spec_path)
        return f"{self.directory} (no MLproject file)"

    def get_entry_point(self, name: str) -> EntryPoint:
        """A declared entry point, or ``python x.py`` / ``bash x.sh`` for a script in the folder."""
        if not isinstance(name, str):
            raise ExecutionException(f"Entry point name must be a string, got {name!r}")
        declared = self.entry_points.get(name)
        if declared is not None:
            return declared
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


# --------------------------------------------------------------------------------------------
# Parameter values: one set of rules for defaults, choices and user values.


class InvalidValue(ValueError):
    """A value does not fit its parameter; ``problem`` reads e.g. ``expected float, got 'x'``."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def show_value(value: object, limit: int = 200) -> str:
    """repr() for messages: credentials in URLs hidden, long values cut."""
    text = mask_userinfo(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised, like os.path.abspath: symlinks stay as the user named them."""
    return Path(os.path.abspath(path))  # noqa: PTH100 - Path.resolve() would follow symlinks


def expand_user(path: str | os.PathLike[str]) -> Path:
    """``~`` and ``~user`` expanded; left as is when there is no such home folder."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def _show_number(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number)


def has_scheme(text: str) -> bool:
    """True for ``s3://b/k``, ``file:///x``; False for ``/x``, ``x`` and ``C:\\x``."""
    try:
        return len(urlparse(text).scheme) >= 2
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False


def _as_float(value: object) -> float:
    if isinstance(value, bool):
        raise InvalidValue(f"expected float, got {show_value(value)}")
    try:
        if isinstance(value, int | float | str):
            return float(value)
    except (ValueError, OverflowError):
        pass
    raise InvalidValue(f"expected float, got {show_value(value)}")


def _as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise InvalidValue(f"expected int, got {show_value(value)}")


def _as_bool_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value)  # 'True' / 'False', as MLflow renders Python booleans
    if isinstance(value, int | str):
        text = str(value)
        if text.strip().lower() in BOOL_TRUE | BOOL_FALSE:
            return text  # keep the user's spelling; it is what the script receives
    raise InvalidValue(f"expected bool (true/false, yes/no, 1/0, on/off), got {show_value(value)}")


def _typed_text(param_type: str, value: object) -> str:
    """The value as the command and the tracking store see it; raises InvalidValue."""
    if param_type == "float":
        return repr(_as_float(value))
    if param_type == "int":
        return str(_as_int(value))
    if param_type == "bool":
        return _as_bool_text(value)
    if param_type in ("path", "uri"):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        # Scalars only (YAML may give numbers or dates for a folder name); str() as MLflow does.
        if isinstance(value, bool | list | tuple | dict | set) or value is None or value == "":
            raise InvalidValue(f"expected a {param_type}, got {show_value(value)}")
        text = str(value)
        if param_type == "uri" and not has_scheme(text):
            raise InvalidValue(
                f"expected a URI with a scheme (such as s3://, https://, file:///), "
                f"got {show_value(text)}"
            )
        return text
    return str(value)


def _comparable(param_type: str, text: str) -> object:
    """What two values of this type are compared by (0.10 equals 0.1, YES equals true)."""
    if param_type == "float":
        return float(text)
    if param_type == "int":
        return int(text)
    if param_type == "bool":
        return text.strip().lower() in BOOL_TRUE
    return text


def check_value(param: Parameter, value: object) -> str:
    """Validate ``value`` against the parameter's type, choices and bounds; return its text.

    Path values are only checked to be non-empty text here; where they point is resolved by
    :func:`mlproj.spec.params.resolve_parameters`.
    """
    text = _typed_text(param.type, value)
    if param.choices is not None:
        wanted = _comparable(param.type, text)
        allowed = [_comparable(param.type, _typed_text(param.type, c)) for c in param.choices]
        if wanted not in allowed:
            listed = ", ".join(show_value(c) for c in param.choices)
            raise InvalidValue(f"expected one of {listed}, got {show_value(value)}")
    if param.min is not None or param.max is not None:
        number = _as_float(text)
        if math.isnan(number):
            raise InvalidValue("got nan, which cannot be compared with min/max")
        if param.min is not None and number < param.min:
            raise InvalidValue(
                f"expected a value >= {_show_number(param.min)}, got {show_value(value)}"
            )
        if param.max is not None and number > param.max:
            raise InvalidValue(
                f"expected a value <= {_show_number(param.max)}, got {show_value(value)}"
            )
    return text


# --------------------------------------------------------------------------------------------
# Loading.


def _key_path(keys: Sequence[Key]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _line_of(raw: bytes, keys: Sequence[Key]) -> int | None:
    """1-based line of the deepest node on ``keys`` (only computed when reporting an error)."""
    try:
        node = yaml.compose(raw, Loader=_Loader)
    except yaml.YAMLError:
        return None
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


@dataclass(frozen=True)
class _SpecFile:
    """The MLproject being loaded: builds errors that point into it."""

    path: Path
    raw: bytes

    def error(self, keys: Sequence[Key], problem: str) -> ExecutionException:
        if not keys:
            return ExecutionException(f"{self.path}: {problem}")
        line = _line_of(self.raw, keys)
        where = f" (line {line})" if line is not None else ""
        return ExecutionException(f"{self.path}: {_key_path(keys)}: {problem}{where}")


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


def _parse_yaml(path: Path) -> tuple[_SpecFile, dict[Any, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExecutionException(f"Cannot read {path}: {exc.strerror or exc}") from None
    spec = _SpecFile(path, raw)
    try:
        data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - _Loader is a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if mark and _tab_at(raw, mark.line, mark.column):
            where += "; YAML indents with spaces, not tabs"
        raise ExecutionException(f"{path}: not valid YAML: {problem}{where}") from None
    except yaml.reader.ReaderError as exc:  # bytes that are not text (bad UTF-8, control chars)
        line = raw[: max(exc.position, 0)].count(b"\n") + 1
        raise ExecutionException(
            f"{path}: not valid YAML: {exc.reason} ({_char_code(exc.character)}, line {line}); "
            "save the file as UTF-8 text"
        ) from None
    except yaml.YAMLError as exc:
        raise ExecutionException(f"{path}: not valid YAML: {one_line(str(exc))}") from None
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


def _as_mapping(spec: _SpecFile, keys: Sequence[Key], value: object) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise spec.error(keys, f"expected a mapping, got {_type_name(value)}")
    return value


def _parse_type(spec: _SpecFile, keys: Sequence[Key], value: object) -> ParamType:
    if value is None:
        return "string"
    if isinstance(value, str):
        name = value.strip().lower()
        name = _TYPE_ALIASES.get(name, name)
        if name in PARAM_TYPES:
            return cast(ParamType, name)
    raise spec.error(
        keys,
        f"unknown parameter type {show_value(value)}; valid types: {', '.join(PARAM_TYPES)}",
    )


def _parse_bound(spec: _SpecFile, keys: Sequence[Key], value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise spec.error(keys, f"expected a number, got {_type_name(value)}")
    return value


def _parse_parameter(spec: _SpecFile, keys: tuple[Key, ...], name: str, decl: object) -> Parameter:
    if isinstance(decl, str):
        return Parameter(name=name, type=_parse_type(spec, keys, decl))
    if not isinstance(decl, Mapping):
        raise spec.error(
            keys,
            f"expected a type name (e.g. `{name}: float`) or a mapping "
            f"(e.g. `{name}: {{type: float, default: 0.5}}`), got {_type_name(decl)}",
        )
    ptype = _parse_type(spec, (*keys, "type"), decl.get("type"))
    low = _parse_bound(spec, (*keys, "min"), decl.get("min"))
    high = _parse_bound(spec, (*keys, "max"), decl.get("max"))
    if (low is not None or high is not None) and ptype not in ("float", "int"):
        bound_key = "min" if low is not None else "max"
        raise spec.error(
            (*keys, bound_key), f"min/max apply only to float and int parameters, not {ptype}"
        )
    if low is not None and high is not None and low > high:
        raise spec.error(
            (*keys, "min"), f"min {_show_number(low)} is greater than max {_show_number(high)}"
        )
    help_text = decl.get("help")
    if help_text is not None and not isinstance(help_text, str):
        raise spec.error((*keys, "help"), f"expected a string, got {_type_name(help_text)}")
    param = Parameter(name=name, type=ptype, min=low, max=high, help=help_text)

    raw_choices = decl.get("choices")
    if raw_choices is not None:
        if not isinstance(raw_choices, list) or not raw_choices:
            raise spec.error(
                (*keys, "choices"), f"expected a non-empty list, got {_type_name(raw_choices)}"
            )
        for index, choice in enumerate(raw_choices):
            try:
                _typed_text(ptype, choice)
            except InvalidValue as exc:
                raise spec.error((*keys, "choices", index), exc.problem) from None
        param = dataclasses.replace(param, choices=tuple(raw_choices))

    default = decl.get("default")
    if default is not None:
        try:
            check_value(param, default)
        except InvalidValue as exc:
            raise spec.error((*keys, "default"), exc.problem) from None
        param = dataclasses.replace(param, default=default)
    return param


def _parse_entry_point(spec: _SpecFile, name: str, decl: object) -> EntryPoint:
    keys: tuple[Key, ...] = ("entry_points", name)
    if not isinstance(decl, Mapping):
        raise spec.error(
            keys, f"expected a mapping with `command` (and `parameters`), got {_type_name(decl)}"
        )
    command = decl.get("command")
    if command is None:
        raise spec.error(keys, "missing `command`: add the shell command this entry point runs")
    if not isinstance(command, str):
        raise spec.error((*keys, "command"), f"expected a string, got {_type_name(command)}")
    if not command.strip():
        raise spec.error((*keys, "command"), "the command is empty")
    params: dict[str, Parameter] = {}
    raw_params = _as_mapping(spec, (*keys, "parameters"), decl.get("parameters"))
    for pname, pdecl in raw_params.items():
        pkeys = (*keys, "parameters", str(pname))
        if not isinstance(pname, str) or not pname:
            raise spec.error(pkeys, f"parameter names must be text, got {show_value(pname)}")
        params[pname] = _parse_parameter(spec, pkeys, pname, pdecl)
    return EntryPoint(name=name, command=command, parameters=params, spec_path=spec.path)


def _parse_docker_env(spec: _SpecFile, value: object) -> DockerEnv:
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
                f'expected a string such as "/host/path:/container/path", got {_type_name(volume)}',
            )
    raw_env = decl.get("environment") or []
    if not isinstance(raw_env, list):
        raise spec.error((*keys, "environment"), f"expected a list, got {_type_name(raw_env)}")
    environment: list[str | tuple[str, str]] = []
    for index, item in enumerate(raw_env):
        environment.append(_parse_docker_variable(spec, (*keys, "environment", index), item))
    return DockerEnv(image=image, volumes=tuple(volumes), environment=tuple(environment))


def _valid_env_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "=" not in name and "\0" not in name


def _parse_docker_variable(
    spec: _SpecFile, keys: Sequence[Key], item: object
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


def _env_file(spec: _SpecFile, directory: Path, key: str, value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise spec.error((key,), f"expected a file name, got {_type_name(value)}")
    path = absolute_path(directory / value)
    if not path.is_file():
        raise spec.error(
            (key,), f"file {value!r} not found (looked for {path}); create it or fix the name"
        )
    return path


def _parse_name(spec: _SpecFile, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise spec.error(("name",), f"expected a string, got {_type_name(value)}")


def load_project(path: str | Path) -> Project:
    """Read and validate the project in folder ``path`` (its MLproject file is optional)."""
    directory = absolute_path(expand_user(path))
    if not directory.is_dir():
        raise ExecutionException(f"Project folder {directory} does not exist or is not a folder")
    spec_path = _find_spec_file(directory)
    if spec_path is None:
        return Project(directory, None, None, {}, *_default_env(directory))

    spec, data = _parse_yaml(spec_path)
    name = _parse_name(spec, data.get("name"))
    entry_points: dict[str, EntryPoint] = {}
    for ep_name, decl in _as_mapping(spec, ("entry_points",), data.get("entry_points")).items():
        if not isinstance(ep_name, str) or not ep_name:
            raise spec.error(
                ("entry_points", str(ep_name)), f"entry point names must be text, got {ep_name!r}"
            )
        entry_points[ep_name] = _parse_entry_point(spec, ep_name, decl)

    spark = data.get("databricks_spark_job")
    if spark is not None and not isinstance(spark, Mapping):
        raise spec.error(("databricks_spark_job",), f"expected a mapping, got {_type_name(spark)}")

    declared_envs = [key for key in _ENV_FIELDS if data.get(key) is not None]
    if len(declared_envs) > 1:
        raise spec.error(
            (declared_envs[1],),
            f"a project declares at most one environment, but {' and '.join(declared_envs)} "
            "are both set; keep one",
        )
    docker: DockerEnv | None = None
    env_file: Path | None = None
    env_type: EnvType
    if "docker_env" in declared_envs:
        docker, env_type = _parse_docker_env(spec, data["docker_env"]), "docker"
    elif "python_env" in declared_envs:
        env_type = "python_env"
        env_file = _env_file(spec, directory, "python_env", data["python_env"])
    elif "conda_env" in declared_envs:
        env_type = "conda_env"
        env_file = _env_file(spec, directory, "conda_env", data["conda_env"])
    else:
        env_type, env_file = _default_env(directory)
    return Project(
        directory=directory,
        spec_path=spec_path,
        name=name,
        entry_points=entry_points,
        env_type=env_type,
        env_file=env_file,
        docker_env=docker,
        databricks_spark_job=dict(spark) if spark is not None else None,
    )


def _default_env(directory: Path) -> tuple[EnvType, Path | None]:
    for file_name, env_type in DEFAULT_ENV_FILES:
        candidate = directory / file_name
        if candidate.is_file():
            return env_type, candidate
    return "none", None
