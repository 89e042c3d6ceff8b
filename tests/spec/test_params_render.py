"""render_command: quoted values and keys, checked placeholders; run for real with bash -c."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.spec.params import ResolvedParameters, render_command, resolve_parameters
from mlproj.spec.project import EntryPoint, Parameter, load_project

# Prints its argv as JSON, so a test sees exactly the words bash produced.
ARGV_SCRIPT = "import json, sys; print(json.dumps(sys.argv[1:]))"


def argv_entry(template: str, *names: str) -> EntryPoint:
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(ARGV_SCRIPT)} {template}"
    return EntryPoint("main", command, {n: Parameter(n) for n in names})


def run_bash(command: str, cwd: Path) -> list[str]:
    out = subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    )
    result: list[str] = json.loads(out.stdout)
    return result


def render(entry: EntryPoint, params: Mapping[str, object], tmp_path: Path) -> str:
    resolved = resolve_parameters(entry, params, project_dir=tmp_path)
    return render_command(entry, resolved)


@pytest.mark.parametrize(
    "value",
    [
        "x; touch {marker}",
        "$(touch {marker})",
        "`touch {marker}`",
        "a' ; touch {marker}; echo '",
        "x && touch {marker}",
        "x | tee {marker}",
        "> {marker}",
    ],
)
def test_values_cannot_inject_commands(tmp_path: Path, value: str) -> None:
    marker = tmp_path / "pwned"
    value = value.replace("{marker}", str(marker))
    entry = argv_entry("{name}", "name")
    argv = run_bash(render(entry, {"name": value, "extra": value}, tmp_path), tmp_path)
    assert argv == [value, "--extra", value]
    assert not marker.exists()


def test_extra_keys_cannot_inject_commands(tmp_path: Path) -> None:
    marker = tmp_path / "x"
    key = f"a;touch {marker}"
    entry = argv_entry("")
    command = render(entry, {key: "v", "$(touch " + str(marker) + ")": "w"}, tmp_path)
    argv = run_bash(command, tmp_path)
    assert argv == [f"--{key}", "v", f"--$(touch {marker})", "w"]
    assert not marker.exists()


@pytest.mark.parametrize(
    "value",
    ["", "[1, 2]", '{"a": 1}', "it's", 'say "hi"', "two\nlines", "tab\there", "ünïcødé", "*", "~"],
)
def test_values_arrive_intact_as_one_argument(tmp_path: Path, value: str) -> None:
    """MLflow issue 6811: empty strings and JSON/list values must survive as one argv element."""
    entry = argv_entry("--x {x} --y={x}", "x")
    command = render(entry, {"x": value, "json": value}, tmp_path)
    assert run_bash(command, tmp_path) == ["--x", value, f"--y={value}", "--json", value]


def test_path_values_are_quoted_absolute_paths(tmp_path: Path) -> None:
    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "f 1.csv").write_text("")
    entry = EntryPoint("main", argv_entry("{p}").command, {"p": Parameter("p", "path")})
    resolved = resolve_parameters(
        entry, {"p": "my data/f 1.csv"}, project_dir=tmp_path, cwd=tmp_path
    )
    command = render_command(entry, resolved)
    assert run_bash(command, tmp_path) == [str(folder / "f 1.csv")]


def test_local_paths_take_precedence_in_the_command(tmp_path: Path) -> None:
    """Remote path params are logged as the URI but the command sees the downloaded file."""
    entry = EntryPoint("main", "cat {data}", {"data": Parameter("data", "path")})
    resolved = ResolvedParameters(
        declared={"data": "s3://b/k.csv"}, extra={}, local_paths={"data": tmp_path / "k 1.csv"}
    )
    assert render_command(entry, resolved) == f"cat '{tmp_path}/k 1.csv'"


def test_literal_braces(tmp_path: Path) -> None:
    entry = argv_entry("'{{\"a\": {x}}}'", "x")
    assert run_bash(render(entry, {"x": "1"}, tmp_path), tmp_path) == ['{"a": 1}']


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (
            "python train.py {alpha} {beta}",
            "the placeholder {beta}: no parameter 'beta' is declared",
        ),
        ("python train.py {}", "the placeholder {}: positional placeholders cannot be filled"),
        ("python train.py {0}", "the placeholder {0}: positional placeholders cannot be filled"),
        ("python train.py {alpha.real}", "the placeholder {alpha.real}: no parameter"),
        ("python train.py {alpha!r}", "the placeholder {alpha!r}: format specs and conversions"),
        ("python train.py {alpha:>5}", "the placeholder {alpha:>5}: format specs and conversions"),
        ("python train.py { alpha }", "the placeholder { alpha }: no parameter ' alpha '"),
    ],
)
def test_bad_placeholders(tmp_path: Path, command: str, shown: str) -> None:
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters: {alpha: float}\n"
        f"    command: {json.dumps(command)}\n"
    )
    project = load_project(tmp_path)
    entry = project.get_entry_point("main")
    with pytest.raises(ExecutionException) as info:  # found before any run is opened
        resolve_parameters(entry, {"alpha": 1}, project_dir=tmp_path, spec_path=project.spec_path)
    message = str(info.value)
    assert message.startswith(
        f"The command of entry point 'main' ({tmp_path / 'MLproject'}) uses {shown}"
    )
    assert message.endswith("or write {{ and }} for a literal brace")
    # render_command checks too, for callers that build ResolvedParameters themselves.
    with pytest.raises(ExecutionException, match="uses the placeholder"):
        render_command(entry, ResolvedParameters({"alpha": "1.0"}, {}))


def test_undeclared_placeholder_lists_declared_ones(tmp_path: Path) -> None:
    entry = EntryPoint("train", "x {lr}", {"alpha": Parameter("alpha"), "beta": Parameter("beta")})
    with pytest.raises(ExecutionException) as info:
        render_command(entry, ResolvedParameters({"alpha": "1", "beta": "2"}, {}))
    assert "(declared: 'alpha', 'beta'); declare it under entry_points.train.parameters" in str(
        info.value
    )


@pytest.mark.parametrize("command", ["echo {", "echo }", "echo {a", "echo a}b"])
def test_lone_braces(tmp_path: Path, command: str) -> None:
    entry = EntryPoint("main", command, {"a": Parameter("a", default="x")}, tmp_path / "MLproject")
    with pytest.raises(ExecutionException) as info:
        resolve_parameters(entry, {}, project_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"The command of entry point 'main' ({tmp_path / 'MLproject'}) has an unmatched brace"
    )
    assert repr(command) in message
    assert message.endswith("write {{ and }} for a literal brace")


def test_missing_resolved_value(tmp_path: Path) -> None:
    entry = EntryPoint("main", "echo {a}", {"a": Parameter("a")})
    with pytest.raises(ExecutionException, match="'a' of entry point 'main' has no resolved value"):
        render_command(entry, ResolvedParameters({}, {}))
