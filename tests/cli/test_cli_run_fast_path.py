"""``mlproj run`` and ``mlproj sweep`` parsed without click must mean exactly what click would
make of them.

The fast parser (mlproj.cli.option_table, with the tables of run_options and sweep) either
returns the values click's own parser gives for the same arguments and environment, or declines
and leaves the command line to click. Hypothesis throws argument lists at both, valid and not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlproj.cli.main import run_command, sweep_command
from mlproj.cli.option_table import Option, Parsed
from mlproj.cli.run_options import RUN_OPTIONS, parse_run_args
from mlproj.cli.sweep import SWEEP_OPTIONS, parse_sweep_args

COMMANDS = {
    "run": (run_command, RUN_OPTIONS, parse_run_args),
    "sweep": (sweep_command, SWEEP_OPTIONS, parse_sweep_args),
}
FLAGS = sorted(
    {
        f
        for options in (RUN_OPTIONS, SWEEP_OPTIONS)
        for option in options
        for f in (*option.flags, *option.off_flags)
    }
)
ODD = ["--help", "-h", "--", "-qP", "-Palpha=1", "--quiet=1", "--timeout=3", "--retries=2",
       "--run-name=-x", "--nope", "-", "-z"]  # fmt: skip
VALUES = ["alpha=0.5", "a=b=c", "x", "", "3", "-1", "0", "1e3", "nan", "inf", "2.5", " 4 ",
          "-x", "main", "{}", '{"k": 1}', "[1]", "file.json", "a", "=v", "grid", "optuna",
          "Random", "maximize", "x=range(0,3)", "0,1"]  # fmt: skip
ENVIRONMENTS = st.fixed_dictionaries(
    {},
    optional={
        "MLFLOW_EXPERIMENT_NAME": st.sampled_from(["exp", ""]),
        "MLFLOW_EXPERIMENT_ID": st.sampled_from(["7", ""]),
        "MLFLOW_TMP_DIR": st.sampled_from(["/tmp/x", ""]),
    },
)
TOKENS = st.one_of(st.sampled_from(FLAGS), st.sampled_from(ODD), st.sampled_from(VALUES))
ENV_NAMES = ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TMP_DIR")


def _click_reading(
    args: list[str], command: str = "run"
) -> tuple[dict[str, object], frozenset[str]] | None:
    try:
        ctx = COMMANDS[command][0].make_context(command, list(args))
    except (click.ClickException, click.exceptions.Exit):
        return None
    env = click.core.ParameterSource.ENVIRONMENT
    from_env = frozenset(n for n in ctx.params if ctx.get_parameter_source(n) == env)
    return dict(ctx.params), from_env


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=600, deadline=None)
@given(args=st.lists(TOKENS, max_size=8), environment=ENVIRONMENTS)
def test_the_fast_parser_agrees_with_click_or_declines(
    command: str, args: list[str], environment: dict[str, str]
) -> None:
    _agrees_or_declines(command, args, environment)


def _agrees_or_declines(command: str, args: list[str], environment: dict[str, str]) -> None:
    parse = COMMANDS[command][2]
    with mock.patch.dict(os.environ, environment):
        for name in ENV_NAMES:
            if name not in environment:
                os.environ.pop(name, None)
        fast: Parsed | None = parse(args)
        if fast is None:
            return
        reading = _click_reading(args, command)
    assert reading is not None, f"fast path accepted what click refuses: {args}"
    values, from_env = reading
    assert fast.values == values
    assert {k: type(v) for k, v in fast.values.items()} == {k: type(v) for k, v in values.items()}
    assert fast.from_env == from_env


def _option_group(options: tuple[Option, ...], index: int, value: str, attached: bool) -> list[str]:
    option = options[index % len(options)]
    flag = option.flags[-1] if attached else option.flags[0]
    if option.kind in ("flag", "switch"):
        return [flag]
    return [f"{option.flags[-1]}={value}"] if attached else [flag, value]


def _command_lines(options: tuple[Option, ...]) -> st.SearchStrategy[list[str]]:
    """Mostly well-formed command lines: one URI among options with values, as people write
    them."""
    return st.builds(
        lambda groups, at: (
            [t for g in groups[:at] for t in g] + ["proj"] + [t for g in groups[at:] for t in g]
        ),
        st.lists(
            st.builds(
                lambda index, value, attached: _option_group(options, index, value, attached),
                st.integers(0, len(options) - 1),
                st.sampled_from(VALUES),
                st.booleans(),
            ),
            max_size=6,
        ),
        st.integers(0, 6),
    )


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=600, deadline=None)
@given(data=st.data(), environment=ENVIRONMENTS)
def test_well_formed_command_lines_agree_with_click(
    command: str, data: st.DataObject, environment: dict[str, str]
) -> None:
    args = data.draw(_command_lines(COMMANDS[command][1]))
    _agrees_or_declines(command, args, environment)


@pytest.mark.parametrize(
    "args",
    [
        [".", "-q"],
        [".", "-P", "alpha=0.3", "-q"],
        ["-e", "train", ".", "--no-wait", "--retries", "2", "--timeout", "1.5", "-P", "a=1"],
        [".", "--tracking-uri=sqlite:///x.db", "--reuse", "--force", "-A", "gpus=all"],
    ],
)
def test_common_command_lines_take_the_fast_path(args: list[str]) -> None:
    fast = parse_run_args(args, environ={})
    assert fast is not None
    assert fast.values == _click_reading(args)[0]  # type: ignore[index]


@pytest.mark.parametrize(
    "args",
    [
        ["-P", "x=range(0,3)", "--max-parallel", "2", "-q"],
        ["-e", "main", "-P", "x=1,2", "--method", "grid", "--seed", "3", "--goal", "maximize"],
        ["--max-runs", "4", "-P", "x=uniform(0,1)", "--method=random", "--reuse", "--gpus", "0"],
    ],
)
def test_common_sweep_command_lines_take_the_fast_path(args: list[str]) -> None:
    fast = parse_sweep_args(["proj", *args], environ={})
    assert fast is not None
    assert fast.values == _click_reading(["proj", *args], "sweep")[0]  # type: ignore[index]


@pytest.mark.parametrize(
    "command", [["run", "-q"], ["sweep", "-P", "x=range(0,2)", "--max-parallel", "2", "-q"]]
)
def test_a_plain_run_or_sweep_never_imports_click(tmp_path: Path, command: list[str]) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    parameters: {x: {default: 0}}\n    command: 'true'\n"
    )
    argv = ["mlproj", command[0], str(project), *command[1:]]
    script = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        "from mlproj.cli.entry import main\n"
        "main()\n"
        "print('click' in sys.modules)\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-P", "alpha"], "Invalid format for -P parameter: 'alpha'. Use -P name=value."),
        (["--retries", "-1"], "Invalid value for '--retries'"),
        (["-c", "{not json"], "Invalid backend config JSON"),
        (["--nope"], "--nope"),  # click words it differently across versions
    ],
)
def test_usage_errors_read_as_click_writes_them(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "MLproject").write_text("name: p\nentry_points:\n  main:\n    command: 'true'\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Usage: mlproj run [OPTIONS] URI" in done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "mlruns").exists()  # nothing ran, no run was opened
