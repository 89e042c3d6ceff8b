"""Side by side with the real MLflow package: the same projects load and render the same way."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlproj.spec.params import render_command, resolve_parameters
from mlproj.spec.project import load_project
from tests.spec.spec_mlflow_example import MLFLOW_EXAMPLE_ENTRY_POINTS

mlflow_spec: Any = pytest.importorskip("mlflow.projects._project_spec")

PROJECTS = {
    "mlflow-example": (
        """\
        name: tutorial
        conda_env: conda.yaml
        entry_points:
          main:
            parameters:
              alpha: {type: float, default: 0.5}
              l1_ratio: {type: float, default: 0.1}
            command: "python train.py {alpha} {l1_ratio}"
        """,
        ["conda.yaml"],
        {"main": {"alpha": "0.3"}},
    ),
    "greeter": (
        MLFLOW_EXAMPLE_ENTRY_POINTS,
        [],
        {
            "main": {},
            "greeter": {"name": "friend; echo 'hi'", "excitement": "10"},
            "sleep": {"duration": "3"},
        },
    ),
    "extensions-and-aliases": (
        """\
        name: ext
        python_env: python_env.yaml
        unknown_key: value
        entry_points:
          main:
            parameters:
              lr: {type: float, default: 0.01, min: 0, max: 1, help: Learning rate}
              opt: {type: str, default: adam, choices: [adam, sgd]}
              shuffle: {type: bool, default: "true"}
              epochs: {type: int, default: 10}
            command: "python train.py --lr {lr} --opt {opt} --shuffle {shuffle} -e {epochs}"
        """,
        ["python_env.yaml"],
        {"main": {"opt": "sgd", "note": "a b", "empty": ""}},
    ),
    "docker": (
        """\
        name: dock
        docker_env:
          image: python:3.11-slim
          volumes: ["/tmp:/tmp"]
          environment: [HOME, [MODE, train]]
        entry_points:
          main:
            command: "python -c 'print(1)'"
        """,
        [],
        {"main": {"x": "1"}},
    ),
    "no-spec-defaults": (None, ["conda.yaml", "train.py"], {"train.py": {"a": "1"}}),
    "public-forms": (
        """\
        name: public
        entry_points:
          main:
            parameters:
              n: {type: float, default: 50}
              lr: {type: float, default: 1e-3}
              k: {type: int, default: 010}
              name: {type: str, default: world}
              flag: {type: boolean, default: true}
              ids: {type: "list[int]", default: [1, 2]}
              data: data/file.csv
              opts: {type: string, default: ""}
            command: >
              python train.py {n} {lr} {k} {name} {flag} {ids} {data}
              $(echo {opts}) ${{EPOCHS:-1}}
          other:
            parameters:
              epochs: {type: int, default: None}
            command: "echo {epochs}"
        """,
        [],
        {"main": {"data": "x.csv", "opts": "a=1 b=2"}},
    ),
}


def make(tmp_path: Path, spec: str | None, files: list[str]) -> Path:
    for name in files:
        (tmp_path / name).write_text("name: x\n" if name.endswith(".yaml") else "")
    if spec is not None:
        (tmp_path / "MLproject").write_text(textwrap.dedent(spec))
    return tmp_path


@pytest.mark.parametrize("key", list(PROJECTS))
def test_same_project_same_commands(tmp_path: Path, key: str) -> None:
    spec, files, runs = PROJECTS[key]
    root = make(tmp_path, spec, files)
    ours = load_project(root)
    theirs = mlflow_spec.load_project(str(root))

    assert ours.name == theirs.name
    if theirs.env_config_path is not None:
        assert ours.env_file == Path(theirs.env_config_path)
    # An entry point with a mistake is kept aside (it fails only when run); MLflow loads it.
    assert [*ours.entry_points, *ours.invalid_entry_points] == list(theirs._entry_points)
    for name, entry in ours.entry_points.items():
        other = theirs._entry_points[name]
        assert entry.command == other.command
        assert list(entry.parameters) == list(other.parameters)
        for pname, param in entry.parameters.items():
            assert param.default == other.parameters[pname].default

    for entry_name, params in runs.items():
        entry = ours.get_entry_point(entry_name)
        resolved = resolve_parameters(entry, params, project_dir=root, spec_path=ours.spec_path)
        expected = theirs.get_entry_point(entry_name).compute_command(params, None)
        # MLflow runs .sh scripts with $SHELL; mlproj always uses bash. Nothing else differs.
        assert render_command(entry, resolved) == expected


def test_mlflow_logs_quoted_values_mlproj_logs_the_values(tmp_path: Path) -> None:
    root = make(tmp_path, PROJECTS["greeter"][0], [])
    entry = load_project(root).get_entry_point("greeter")
    resolved = resolve_parameters(entry, {"name": "hello world"}, project_dir=root)
    theirs = mlflow_spec.load_project(str(root)).get_entry_point("greeter")
    their_params, _ = theirs.compute_parameters({"name": "hello world"}, None)
    assert their_params["name"] == "'hello world'"
    assert resolved.as_logged()["name"] == "hello world"


def test_a_folder_named_mlproject_is_skipped_where_mlflow_fails(tmp_path: Path) -> None:
    """Seen in a public repository: `mlproject` is a symlink to the package folder
    `src/mlproject`. MLflow tries to open it as the spec; mlproj skips it (docs/differences.md)."""
    (tmp_path / "src" / "mlproject").mkdir(parents=True)
    (tmp_path / "mlproject").symlink_to("src/mlproject", target_is_directory=True)
    (tmp_path / "train.py").write_text("")
    with pytest.raises(IsADirectoryError):
        mlflow_spec.load_project(str(tmp_path))
    project = load_project(tmp_path)
    assert project.spec_path is None
    assert project.get_entry_point("train.py").command == "python train.py"
