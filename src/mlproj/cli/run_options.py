"""The options of ``mlproj run``, declared once, and a click-free parser for the common case.

Importing click costs more than all the rest of a no-op run's start (about a quarter of
it), and ``mlproj run`` is the command users and sweeps start most. So the options are declared
here as plain data: ``mlproj.cli.main`` builds the click command from them (help, completion,
usage errors), and :func:`parse_run_args` reads an argument list that uses them plainly,
giving the values click would give. Anything else (``--help``, an unknown or malformed option,
a missing value, a value click must judge) returns None, and click then parses the whole
command line itself, with its own messages. A test holds the two parsers to the same result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

# Option kinds: one value, a repeatable value, a flag, and an on/off pair (--wait/--no-wait).
VALUE, MULTIPLE, FLAG, SWITCH = "value", "multiple", "flag", "switch"


class RunOption:
    """One option of ``mlproj run``: its click declaration and what the fast parser needs."""

    __slots__ = (
        "default",
        "dest",
        "envvar",
        "flags",
        "help",
        "kind",
        "metavar",
        "number",
        "off_flags",
        "show_default",
    )

    def __init__(
        self,
        dest: str,
        flags: tuple[str, ...],
        help: str,
        *,
        kind: str = VALUE,
        default: Any = None,
        off_flags: tuple[str, ...] = (),
        envvar: str | None = None,
        metavar: str | None = None,
        show_default: bool = False,
        number: tuple[str, float, bool] | None = None,
    ) -> None:
        self.dest = dest
        self.flags = flags
        self.off_flags = off_flags
        self.kind = kind
        self.default = default
        self.help = help
        self.envvar = envvar
        self.metavar = metavar
        self.show_default = show_default
        # ("float" | "int", minimum, minimum excluded): click's FloatRange / IntRange.
        self.number = number


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("entry_point", ("-e", "--entry-point"), "Entry point to run.", default="main",
              show_default=True),
    RunOption("version", ("-v", "--version"), "Git branch, tag or commit (short SHAs too)."),
    RunOption("params", ("-P", "--param-list"),
              "An entry point parameter, e.g. -P alpha=0.5; repeatable.", kind=MULTIPLE,
              metavar="NAME=VALUE"),
    RunOption("docker_args", ("-A", "--docker-args"),
              "A `docker run` option, e.g. -A gpus=all or -A privileged; repeatable.",
              kind=MULTIPLE, metavar="NAME[=VALUE]"),
    RunOption("experiment_name", ("--experiment-name",), "Experiment name, created when missing.",
              envvar="MLFLOW_EXPERIMENT_NAME"),
    RunOption("experiment_id", ("--experiment-id",), "Experiment id.",
              envvar="MLFLOW_EXPERIMENT_ID"),
    RunOption("backend", ("-b", "--backend"),
              "local, slurm, ray, kubernetes, databricks or a plugin.", default="local",
              show_default=True),
    RunOption("backend_config", ("-c", "--backend-config"),
              "JSON string, or path to a .json file."),
    RunOption("env_manager", ("--env-manager",),
              "local, uv, virtualenv or conda (default: from the project)."),
    RunOption("storage_dir", ("--storage-dir",), "Where remote `path` parameters are downloaded.",
              envvar="MLFLOW_TMP_DIR"),
    RunOption("run_id", ("--run-id",),
              "Re-enter this RUNNING run (an id or a unique prefix) instead of creating one."),
    RunOption("run_name", ("--run-name",), "Name of the new run."),
    RunOption("build_image", ("--build-image",),
              "Docker projects: build an image with the project inside.", kind=FLAG,
              default=False),
    RunOption("tracking_uri", ("--tracking-uri",),
              "Tracking store (default: MLFLOW_TRACKING_URI, else ./mlruns if it holds "
              "runs, else sqlite:///mlflow.db, as MLflow)."),
    RunOption("wait", ("--wait",), "Wait for the run to end (default: yes, except on databricks).",
              kind=SWITCH, off_flags=("--no-wait",)),
    RunOption("timeout", ("--timeout",), "Stop the run after this long (local backend).",
              metavar="SECONDS", number=("float", 0.0, True)),
    RunOption("reuse", ("--reuse",),
              "--reuse: if a FINISHED run with the same code, entry point, parameters and "
              "environment exists in the experiment, return it without running; --force: run "
              "(default).", kind=SWITCH, off_flags=("--force",), default=False),
    RunOption("retries", ("--retries",), "Try a failed run again, N times.", default=0,
              number=("int", 0, False)),
    RunOption("retry_delay", ("--retry-delay",),
              "Wait before the first retry; doubled for each next one.", default=1.0,
              show_default=True, metavar="SECONDS", number=("float", 0.0, False)),
    RunOption("quiet", ("-q", "--quiet"),
              "No mlproj status or progress lines (warnings and errors still show).", kind=FLAG,
              default=False),
)  # fmt: skip

_BY_FLAG: dict[str, tuple[RunOption, bool]] = {}
for _option in RUN_OPTIONS:
    for _flag in _option.flags:
        _BY_FLAG[_flag] = (_option, True)
    for _flag in _option.off_flags:
        _BY_FLAG[_flag] = (_option, False)


class ParsedRun:
    """The values of ``mlproj run``'s parameters, and which came from environment variables."""

    __slots__ = ("from_env", "values")

    def __init__(self, values: dict[str, Any], from_env: frozenset[str]) -> None:
        self.values = values
        self.from_env = from_env


def parse_run_args(args: list[str], environ: Mapping[str, str] | None = None) -> ParsedRun | None:
    """``mlproj run``'s arguments (after ``run``) as click would read them, or None when click
    must read them itself."""
    read = _read_command_line(args)
    if read is None:
        return None
    given, uris = read
    if len(uris) != 1:
        return None
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {"uri": uris[0]}
    from_env: set[str] = set()
    for option in RUN_OPTIONS:
        if option.dest in given:
            values[option.dest] = given[option.dest]
        elif option.envvar is not None and option.envvar in environ:
            if not environ[option.envvar]:
                return None  # click versions differ on empty variables: let click decide
            values[option.dest] = environ[option.envvar]
            from_env.add(option.dest)
        else:
            values[option.dest] = () if option.kind == MULTIPLE else option.default
    return ParsedRun(values, frozenset(from_env))


def _read_command_line(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    """The options given and the positional words, or None for anything out of the plain."""
    given: dict[str, Any] = {}
    words: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        index += 1
        if not word.startswith("-"):
            words.append(word)
            continue
        name, equals, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        # Unknown here: --help, --, "-" (stdin), combined or attached short options, a typo.
        found = _BY_FLAG.get(name)
        if found is None:
            return None
        option, on = found
        if option.kind in (FLAG, SWITCH):
            if equals:
                return None
            given[option.dest] = on
            continue
        if equals:
            value = attached
        elif index < len(args) and not args[index].startswith("-"):
            value = args[index]
            index += 1
        else:
            return None  # missing, or a value click must judge (it may be an option)
        if option.number is not None:
            number = _number(option.number, value)
            if number is None:
                return None
            given[option.dest] = number
        elif option.kind == MULTIPLE:
            given[option.dest] = (*given.get(option.dest, ()), value)
        else:
            given[option.dest] = value
    return given, words


def _number(rule: tuple[str, float, bool], text: str) -> float | int | None:
    kind, minimum, minimum_excluded = rule
    try:
        number: float | int = int(text) if kind == "int" else float(text)
    except ValueError:
        return None
    if math.isnan(number) or number < minimum or (minimum_excluded and number == minimum):
        return None  # NaN, or out of range: click's message says which
    return number
