"""Project.get_entry_point: declared entry points and .py / .sh scripts run by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from spec_mlflow_example import GREETER_ENTRY_POINTS

from mlproj.errors import ExecutionException
from mlproj.spec.params import render_command, resolve_parameters
from mlproj.spec.project import EntryPoint, load_project


def test_declared_entry_point(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(GREETER_ENTRY_POINTS)
    project = load_project(tmp_path)
    entry = project.get_entry_point("greeter")
    assert entry.command == "python greeter.py {greeting} {name}"
    assert list(entry.parameters) == ["greeting", "name"]


def test_greeter_example_renders_like_mlflow(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(GREETER_ENTRY_POINTS)
    project = load_project(tmp_path)
    entry = project.get_entry_point("greeter")
    resolved = resolve_parameters(
        entry,
        {"name": "friend", "excitement": 10},
        project_dir=project.directory,
        spec_path=project.spec_path,
    )
    assert resolved.declared == {"greeting": "hi", "name": "friend"}
    assert resolved.extra == {"excitement": "10"}
    assert render_command(entry, resolved) == "python greeter.py hi friend --excitement 10"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("train.py", "python train.py"),
        ("run.sh", "bash run.sh"),
        ("sub/dir/train.py", "python sub/dir/train.py"),
        ("my script.py", "python 'my script.py'"),
        ("odd{x}.py", "python 'odd{{x}}.py'"),
    ],
)
@pytest.mark.parametrize("with_spec", [False, True])
def test_scripts_are_entry_points(tmp_path: Path, name: str, command: str, with_spec: bool) -> None:
    if with_spec:
        (tmp_path / "MLproject").write_text(GREETER_ENTRY_POINTS)
    script = tmp_path / name
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("")
    project = load_project(tmp_path)
    entry = project.get_entry_point(name)
    assert entry == EntryPoint(name, command, {}, project.spec_path)
    # No declared parameters: every user parameter is appended as --key value.
    resolved = resolve_parameters(entry, {"foo": "bar"}, project_dir=tmp_path)
    assert resolved.extra == {"foo": "bar"}
    rendered = render_command(entry, resolved)
    assert rendered == command.replace("{{", "{").replace("}}", "}") + " --foo bar"


def test_script_entry_point_really_runs(tmp_path: Path) -> None:
    (tmp_path / "show.py").write_text("import sys; print(sys.argv[1:])\n")
    project = load_project(tmp_path)
    entry = project.get_entry_point("show.py")
    resolved = resolve_parameters(entry, {"k": "a b"}, project_dir=tmp_path)
    command = render_command(entry, resolved).replace("python", sys.executable, 1)
    out = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['--k', 'a b']"


def test_missing_script_is_reported(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(GREETER_ENTRY_POINTS)
    project = load_project(tmp_path)
    with pytest.raises(ExecutionException) as info:
        project.get_entry_point("trian.py")
    message = str(info.value)
    assert f"'trian.py' is not declared in {tmp_path / 'MLproject'}" in message
    assert f"there is no script {tmp_path / 'trian.py'}" in message


def test_missing_script_without_spec(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match=r"\(no MLproject file\) and there is no script"):
        load_project(tmp_path).get_entry_point("run.sh")


def test_script_outside_the_project_is_refused(tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text("")
    (tmp_path / "proj").mkdir()
    with pytest.raises(ExecutionException, match="outside the project folder"):
        load_project(tmp_path / "proj").get_entry_point("../evil.py")


def test_unknown_entry_point(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(GREETER_ENTRY_POINTS)
    with pytest.raises(ExecutionException) as info:
        load_project(tmp_path).get_entry_point("train")
    assert str(info.value) == (
        f"Could not find 'train' among entry points ['main', 'greeter'] of "
        f"{tmp_path / 'MLproject'} or interpret it as a runnable script (supported: .py, .sh)"
    )


@pytest.mark.parametrize("name", ["my_program.scala", "train.R", "main", ""])
def test_unknown_entry_point_without_spec(tmp_path: Path, name: str) -> None:
    with pytest.raises(ExecutionException) as info:
        load_project(tmp_path).get_entry_point(name)
    assert str(info.value).startswith(
        f"Could not find {name!r} among entry points [] of {tmp_path}"
    )


def test_script_name_starting_with_dash_is_not_an_option(tmp_path: Path) -> None:
    (tmp_path / "-v.py").write_text("import sys; print('ran', sys.argv[1:])\n")
    entry = load_project(tmp_path).get_entry_point("-v.py")
    assert entry.command == "python ./-v.py"
    command = render_command(entry, resolve_parameters(entry, {}, project_dir=tmp_path))
    out = subprocess.run(
        ["bash", "-c", command.replace("python", sys.executable, 1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "ran []"
