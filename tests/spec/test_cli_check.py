"""`mlproj check`: what run-time validation finds in every entry point, plus the common
mistakes, each with file and line; exit 1 on errors, 0 with warnings only; --json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from mlproj.cli.main import cli
from mlproj.spec.project import load_project

MISTAKES = """\
name: demo
entry_point:
  x: {command: y}
docker_env:
  image: busybox
  volumes: ["$(pwd)/data:/data", "${PWD}:/w", "%cd%:/c", "/abs:/abs"]
entry_points:
  main:
    parameters:
      epochs: {type: float, default: 50}
      lr: {type:float, default:0.1}
      batch: {type: int, defulat: 32}
      data: data/file.csv
      seed: {type: int, default: 1, default=: 2}
    comand: nothing
    command: "python train.py {epochs} {lr} {data}"
  broken_default:
    parameters:
      n: {type: int, default: None}
    command: "echo {n}"
  placeholder:
    parameters:
      a: {default: 1}
    command: "echo {a} {missing}"
  list_type:
    parameters:
      ids: {type: "list[int]", default: [1]}
      kind: {type: flaot, default: 1.5}
    command: "echo {ids} {kind}"
"""


def check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", *args])
    return result.exit_code, result.output


def problems(project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, output = check(str(project), "--json", *args)
    return code, json.loads(output)


def write(root: Path, spec: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLproject").write_text(textwrap.dedent(spec))
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    return root


def by_code(report: dict[str, Any]) -> dict[str, list[tuple[int | None, str]]]:
    found: dict[str, list[tuple[int | None, str]]] = {}
    for problem in report["problems"]:
        found.setdefault(problem["code"], []).append((problem["line"], problem["key"]))
    return found


def test_every_mistake_with_its_line(tmp_path: Path) -> None:
    project = write(tmp_path / "p", MISTAKES)
    code, report = problems(project)
    assert code == 1
    found = by_code(report)
    spec = str(project / "MLproject")
    assert {p["file"] for p in report["problems"]} == {spec}
    assert found["invalid"] == [(19, "entry_points.broken_default.parameters.n.default")]
    assert found["placeholder"] == [(24, "entry_points.placeholder.command")]
    assert found["misspelled-key"] == [
        (2, "entry_point"),
        (12, "entry_points.main.parameters.batch.defulat"),
        (14, "entry_points.main.parameters.seed.default="),
        (15, "entry_points.main.comand"),
    ]
    assert found["flow-mapping-colon"] == [
        (11, "entry_points.main.parameters.lr.type:float"),
        (11, "entry_points.main.parameters.lr.default:0.1"),
    ]
    assert found["unknown-type"] == [
        (13, "entry_points.main.parameters.data"),
        (27, "entry_points.list_type.parameters.ids.type"),
        (28, "entry_points.list_type.parameters.kind.type"),
    ]
    assert found["unused-parameter"] == [
        (12, "entry_points.main.parameters.batch"),
        (14, "entry_points.main.parameters.seed"),
    ]
    assert found["whole-float-default"] == [(10, "entry_points.main.parameters.epochs.default")]
    assert found["unexpanded-volume"] == [
        (6, "docker_env.volumes[0]"),
        (6, "docker_env.volumes[1]"),
        (6, "docker_env.volumes[2]"),
    ]
    messages = {p["key"]: p["message"] for p in report["problems"]}
    assert "did you mean 'default'?" in messages["entry_points.main.parameters.batch.defulat"]
    assert "did you mean 'command'?" in messages["entry_points.main.comand"]
    assert "did you mean 'entry_points'?" in messages["entry_point"]
    assert "did you mean 'float'?" in messages["entry_points.list_type.parameters.kind.type"]
    assert "write `type: float`" in messages["entry_points.main.parameters.lr.type:float"]
    assert (report["errors"], report["warnings"]) == (2, len(report["problems"]) - 2)


def test_text_output_is_file_line_severity(tmp_path: Path) -> None:
    project = write(tmp_path / "p", MISTAKES)
    code, output = check(str(project))
    assert code == 1
    spec = project / "MLproject"
    lines = output.splitlines()
    assert lines[0] == (
        f"{spec}:19: error: entry_points.broken_default.parameters.n.default: "
        "expected int, got 'None' [invalid]"
    )
    assert f"{spec}:15: warning: entry_points.main.comand: unknown key 'comand'" in output
    assert lines[-1] == f"2 errors, {len(lines) - 3} warnings in {project}"


def test_one_entry_point_and_warnings_only_exit_0(tmp_path: Path) -> None:
    project = write(tmp_path / "p", MISTAKES)
    code, report = problems(project, "-e", "main")
    assert code == 0
    assert report["errors"] == 0
    assert {p["entry_point"] for p in report["problems"]} == {None, "main"}
    code, report = problems(project, "-e", "placeholder")
    assert (code, by_code(report)["placeholder"]) == (1, [(24, "entry_points.placeholder.command")])
    code, report = problems(project, "-e", "nope")
    assert code == 1
    assert "Could not find 'nope'" in report["problems"][0]["message"]


def test_clean_project_has_nothing_to_say(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters: {a: {type: float, default: 0.5}}\n"
        "    command: python x.py {a}\n",
    )
    assert problems(project) == (
        0,
        {"project": str(project), "errors": 0, "warnings": 0, "problems": []},
    )


def test_environment_files(tmp_path: Path) -> None:
    missing = write(
        tmp_path / "a", "conda_env: envs/conda.yaml\nentry_points: {main: {command: x}}\n"
    )
    code, report = problems(missing)
    assert code == 1
    assert by_code(report)["missing-env-file"] == [(1, "conda_env")]

    requirements = write(
        tmp_path / "b",
        "python_env: python_env.yaml\nentry_points: {main: {command: x}}\n",
        {"python_env.yaml": "python: '3.2'\ndependencies: [-r requirements.txt]\n"},
    )
    code, report = problems(requirements)
    assert code == 1
    found = by_code(report)
    # What is wrong inside python_env.yaml points into it.
    assert found["missing-env-file"] == [(2, "dependencies[0]")]
    assert found["python-download"] == [(1, "python")]
    assert {p["file"] for p in report["problems"]} == {str(requirements / "python_env.yaml")}
    assert "asks for python '3.2'" in report["problems"][-1]["message"]

    # A folder without an MLproject: the default python_env.yaml is checked, with its lines.
    (requirements / "MLproject").unlink()
    code, output = check(str(requirements))
    assert code == 1
    env_file = requirements / "python_env.yaml"
    assert output.splitlines()[:2] == [
        f"{env_file}:2: error: dependencies[0]: python_env.yaml refers to "
        f"{requirements / 'requirements.txt'}, which does not exist [missing-env-file]",
        f"{env_file}:1: warning: python: python_env.yaml asks for python '3.2', which no "
        "interpreter on this machine satisfies: the run downloads one first [python-download]",
    ]


def test_conda_packages_uv_would_drop(tmp_path: Path) -> None:
    assert shutil.which("conda") is None  # mlproj converts conda specs for uv here
    project = write(
        tmp_path / "p",
        "conda_env: conda.yaml\nentry_points: {main: {command: x}}\n",
        {
            "conda.yaml": "name: x\ndependencies:\n  - python=3.11\n  - openssl\n  - mkl\n"
            "  - pytorch\n  - scikit-learn=1.3\n  - pip: [mlflow]\n"
        },
    )
    code, report = problems(project)
    assert code == 0
    messages = {p["code"]: p["message"] for p in report["problems"]}
    assert messages["conda-packages-dropped"].endswith("packages: openssl, mkl")
    assert "pytorch (as torch)" in messages["conda-packages-renamed"]
    assert messages["conda-packages-tried"].endswith("torch, scikit-learn==1.3.*")
    # They point at the dependency list of conda.yaml itself.
    conda_file = str(project / "conda.yaml")
    assert {(p["file"], p["line"], p["key"]) for p in report["problems"]} == {
        (conda_file, 2, "dependencies")
    }


def test_yaml_errors_and_the_real_command(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "MLproject").write_text("entry_points:\n  main:\n    command: [x\n")
    result = subprocess.run(
        [sys.executable, "-m", "mlproj", "check", str(project)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith(f"{project / 'MLproject'}:4: error: not valid YAML")
    assert "1 error, 0 warnings" in result.stderr


def test_whole_float_default_only_when_written_without_a_point(tmp_path: Path) -> None:
    """`1.0` or `.0` reaches the command as `1.0`, which int() already refuses: the script
    reads floats, so only a default written as a whole number is worth a warning (public
    MLproject files declare `default: 1.0` and `default: .0` for floats)."""
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters:
              a: {type: float, default: 1.0}
              b: {type: float, default: .0}
              c: {type: float, default: -2.0}
              d: {type: float, default: 4}
              e: {type: float, default: "8"}
              f: {type: float, default: 0.5}
            command: "python x.py {a} {b} {c} {d} {e} {f}"
        """,
    )
    code, report = problems(project)
    assert code == 0
    assert by_code(report) == {
        "whole-float-default": [
            (7, "entry_points.main.parameters.d.default"),
            (8, "entry_points.main.parameters.e.default"),
        ]
    }


def test_description_key_points_to_help(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters:
              opts:
                description: overrides for the config
                type: str
                default: ''
            command: "python x.py $(echo {opts})"
        """,
    )
    code, report = problems(project)
    assert code == 0
    [problem] = report["problems"]
    assert (problem["code"], problem["line"]) == ("unknown-key", 5)
    assert problem["key"] == "entry_points.main.parameters.opts.description"
    assert "the key for a description is 'help'" in problem["message"]


def test_option_lines_that_the_shell_runs_alone(tmp_path: Path) -> None:
    """In a `>` block, lines indented more than the first keep their line breaks, so bash
    runs `--epochs 3` as a command of its own (under MLflow too): seen in a public project
    on every entry point. Continued, piped and multi-command scripts are fine."""
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          folded:
            parameters: {n: {type: int, default: 3}}
            command: >
              python train.py
                --epochs {n}
                --fast
          continued:
            command: |
              python train.py \\
                --epochs 3
          piped:
            command: |
              cat data.txt |
                -x
          two_commands:
            command: |
              python prepare.py
              python train.py --fast
          same_indent:
            command: >
              python train.py
              --fast
        """,
    )
    folded = load_project(project).entry_points["folded"].command
    assert folded == "python train.py\n  --epochs {n}\n  --fast\n"  # YAML keeps the breaks
    code, report = problems(project)
    assert code == 0
    assert by_code(report) == {"command-line-break": [(4, "entry_points.folded.command")]}
    [problem] = report["problems"]
    assert problem["message"].startswith("line 2 of the command ('--epochs {n}') starts with")
