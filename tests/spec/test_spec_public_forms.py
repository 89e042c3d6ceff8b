"""Forms seen in public MLproject files load and run as under `mlflow run` (issue 11).

Each test writes a tiny project and runs it with the real CLI (`python -m mlproj run`, a real
child process, a real file store); the command's argv is read back from what it wrote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlproj.spec.project import load_project
from mlproj.tracking import get_store

SHOW_ARGV = "import json, sys; json.dump(sys.argv[1:], open('argv.json', 'w'))\n"


def write(
    root: Path, spec: str | None, files: dict[str, str] | None = None, *, name: str = "MLproject"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if spec is not None:
        (root / name).write_text(textwrap.dedent(spec))
    (root / "show.py").write_text(SHOW_ARGV)
    for file_name, text in (files or {}).items():
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        (root / file_name).write_text(text)
    return root


def child_env(**extra: str) -> dict[str, str]:
    # `python` in commands is this interpreter, which has mlflow installed.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **extra}


def mlproj_run(
    project: Path, *args: str, env_manager: str | None = "local", ok: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlproj", "run", str(project), *args]
    if env_manager:
        command += ["--env-manager", env_manager]
    result = subprocess.run(
        command, capture_output=True, text=True, env=child_env(**env), timeout=300, check=False
    )
    assert (result.returncode == 0) is ok, result.stderr
    return result


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"run ([0-9a-f]{32}) (FINISHED|FAILED)", result.stderr)
    assert found, result.stderr
    return found.group(1)


def argv(project: Path) -> list[str]:
    return list(json.loads((project / "argv.json").read_text()))


def test_types_str_boolean_and_list_int(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters:
              name: {type: str, default: world}
              flag: {type: boolean, default: true}
              ids: {type: "list[int]", default: [1, 2]}
            command: "python show.py {name} {flag} {ids}"
        """,
    )
    result = mlproj_run(project)
    assert argv(project) == ["world", "True", "[1, 2]"]
    assert "unknown parameter type 'list[int]'" in result.stderr
    run = get_store().get_run(run_id_of(result))
    assert run.params == {"name": "world", "flag": "True", "ids": "[1, 2]"}
    mlproj_run(project, "-P", "flag=no", "-P", "ids=[3]")
    assert argv(project) == ["world", "no", "[3]"]


def test_empty_parameters_and_extra_params(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p", "entry_points:\n  main:\n    parameters:\n    command: python show.py\n"
    )
    mlproj_run(project, "-P", "x=1", "-P", "y=a b")
    assert argv(project) == ["--x", "1", "--y", "a b"]


def test_folded_and_continued_commands(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters: {a: {default: 1}, b: {default: two}}
            command: >
              python show.py
              --a {a}
              --b {b}
          multi:
            parameters: {a: {default: 1}}
            command: |
              python show.py \\
                --a {a} \\
                --c 3
        """,
    )
    mlproj_run(project)
    assert argv(project) == ["--a", "1", "--b", "two"]
    mlproj_run(project, "-e", "multi", "-P", "a=x y")
    assert argv(project) == ["--a", "x y", "--c", "3"]


def test_hydra_style_pass_through_and_shell_defaults(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters: {opts: {type: string, default: ""}}
            command: "python show.py fixed $(echo {opts})"
          shell:
            command: "python show.py ${{EPOCHS:-1}} ${{HOME:+set}}"
        """,
    )
    mlproj_run(project)
    assert argv(project) == ["fixed"]
    mlproj_run(project, "-P", "opts=trainer.epochs=3 model=resnet")
    assert argv(project) == ["fixed", "trainer.epochs=3", "model=resnet"]
    mlproj_run(project, "-e", "shell")
    assert argv(project) == ["1", "set"]
    mlproj_run(project, "-e", "shell", EPOCHS="7")
    assert argv(project)[0] == "7"


def test_shell_script_commands(tmp_path: Path) -> None:
    script = '#!/bin/bash\nset -e\npython show.py "from-sh" "$@"\n'
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters: {alpha: {type: float, default: 0.5}}
            command: "bash train.sh {alpha}"
          direct:
            command: "./train.sh direct"
        """,
        {"train.sh": script},
    )
    (project / "train.sh").chmod(0o755)
    mlproj_run(project)
    assert argv(project) == ["from-sh", "0.5"]
    mlproj_run(project, "-e", "direct")
    assert argv(project) == ["from-sh", "direct"]
    mlproj_run(project, "-e", "train.sh", "-P", "k=v")
    assert argv(project) == ["from-sh", "--k", "v"]


def test_env_file_outside_the_project_folder(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text("name: x\ndependencies: [python=3.11, pip]\n")
    project = write(
        tmp_path / "p",
        "conda_env: ../environment.yml\nentry_points:\n  main:\n    command: python show.py ok\n",
    )
    loaded = load_project(project)
    assert (loaded.env_type, loaded.env_file) == ("conda_env", tmp_path / "environment.yml")
    mlproj_run(project)
    assert argv(project) == ["ok"]


def test_conda_env_null_falls_back_to_the_default_files(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        "conda_env: ~\nentry_points:\n  main:\n    command: python show.py ok\n",
        {"conda.yaml": "name: x\ndependencies: [python=3.11]\n"},
    )
    loaded = load_project(project)
    assert (loaded.env_type, loaded.env_file) == ("conda_env", project / "conda.yaml")
    (project / "conda.yaml").unlink()
    assert load_project(project).env_type == "none"
    mlproj_run(project, env_manager=None)
    assert argv(project) == ["ok"]


def test_python_env_yaml_holding_a_conda_spec(tmp_path: Path) -> None:
    conda_spec = "name: demo\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n"
    for spec in ("python_env: python_env.yaml\n", ""):
        project = write(
            tmp_path / f"p{len(spec)}",
            spec + "entry_points:\n  main:\n    command: python show.py ok\n",
            {"python_env.yaml": conda_spec},
        )
        loaded = load_project(project)
        assert (loaded.env_type, loaded.env_file) == ("conda_env", project / "python_env.yaml")
        assert [w.code for w in loaded.warnings] == ["conda-spec-in-python-env"]
        result = mlproj_run(project)
        assert "holds a conda environment spec" in result.stderr
        assert argv(project) == ["ok"]


def test_mlproject_folder_or_symlink_is_not_the_spec(tmp_path: Path) -> None:
    project = write(tmp_path / "p", None, {"mlproject/readme.txt": "docs"})
    assert load_project(project).spec_path is None
    mlproj_run(project, "-e", "show.py", "-P", "a=1")
    assert argv(project) == ["--a", "1"]

    linked = write(
        tmp_path / "q",
        "entry_points:\n  main:\n    command: python show.py spec\n",
        name="MLProject",
    )
    (linked / "mlproject").symlink_to(project / "mlproject", target_is_directory=True)
    assert load_project(linked).spec_path == linked / "MLProject"
    mlproj_run(linked)
    assert argv(linked) == ["spec"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    project = write(tmp_path / "p", None)
    text = "entry_points:\n  main:\n    parameters:\n      a: {default: x}\n    command: >\n      python show.py\n      {a}\n"
    (project / "MLproject").write_bytes(text.replace("\n", "\r\n").encode())
    mlproj_run(project, "-P", "a=y")
    assert argv(project) == ["y"]


def test_capital_p_mlproject(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        "entry_points:\n  main:\n    command: python show.py cap\n",
        name="MLProject",
    )
    result = mlproj_run(project)
    assert argv(project) == ["cap"]
    assert result.stderr.rstrip().endswith("FINISHED; browse: mlproj ui")


def test_docker_env_extra_keys_are_ignored(tmp_path: Path) -> None:
    image = "mlproj-ci/busybox:1"
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"{image} is built by .ci/docker-setup.sh; not here")
    project = write(
        tmp_path / "p",
        f"""\
        name: dockextra
        docker_env:
          image: {image}
          namespace: team
          registry: registry.example.com
          kubernetes_env: {{cpu: 2}}
        entry_points:
          main:
            parameters: {{msg: {{default: hello}}}}
            command: "echo {{msg}} > out.txt"
        """,
    )
    result = mlproj_run(project, env_manager=None, MLFLOW_ALLOW_FILE_STORE="true")
    assert get_store().get_run(run_id_of(result)).info.status == "FINISHED"
    assert (project / "out.txt").read_text().strip() == "hello"


# --- validation per entry point, unknown types, number texts ---------------------------------


BROKEN_NEIGHBOURS = """\
entry_points:
  main:
    parameters: {n: {type: int, default: 3}}
    command: "python show.py {n}"
  none_default:
    parameters: {epochs: {type: int, default: None}}
    command: "python show.py {epochs}"
  placeholder:
    command: "python show.py {undeclared}"
  not_a_mapping: python show.py
"""


def test_a_mistake_in_another_entry_point_is_only_a_warning(tmp_path: Path) -> None:
    project = write(tmp_path / "p", BROKEN_NEIGHBOURS)
    result = mlproj_run(project)
    assert argv(project) == ["3"]
    assert (
        "entry point 'none_default' cannot run: expected int, got 'None' (line 6)" in result.stderr
    )
    assert "entry point 'not_a_mapping' cannot run" in result.stderr

    runs_before = len(get_store().search_runs(["0"]))
    for name, message in [
        (
            "none_default",
            "entry_points.none_default.parameters.epochs.default: expected int, got 'None' (line 6)",
        ),
        ("placeholder", "uses the placeholder {undeclared}"),
        ("not_a_mapping", "entry_points.not_a_mapping: expected a mapping"),
    ]:
        failed = mlproj_run(project, "-e", name, ok=False)
        assert message in failed.stderr
        assert "Traceback" not in failed.stderr
    assert len(get_store().search_runs(["0"])) == runs_before  # checked before any run opened
    # The default is wrong whatever value is given: the entry point's error stays an error.
    assert (
        "expected int, got 'None'"
        in mlproj_run(project, "-e", "none_default", "-P", "epochs=5", ok=False).stderr
    )


def test_shorthand_type_is_a_required_text_parameter(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      data: data/file.csv\n    command: python show.py {data}\n",
    )
    missing = mlproj_run(project, ok=False)
    assert "No value given for missing parameters: 'data'" in missing.stderr
    result = mlproj_run(project, "-P", "data=other.csv")
    assert "`data: data/file.csv` declares the type 'data/file.csv', not a default" in result.stderr
    assert argv(project) == ["other.csv"]  # passed through, not checked to exist
    assert get_store().get_run(run_id_of(result)).params == {"data": "other.csv"}


LOGS_FLOAT = """\
import sys, mlflow
with mlflow.start_run():
    mlflow.log_param("n", float(sys.argv[1]))
open("argv.json", "w").write(repr(sys.argv[1:]).replace("'", '"'))
"""


@pytest.mark.usefixtures("tracking_store_kind")  # on the file and SQLite stores
def test_numbers_reach_the_command_as_written_and_relogging_works(tmp_path: Path) -> None:
    project = write(
        tmp_path / "p",
        """\
        entry_points:
          main:
            parameters:
              n: {type: float, default: 50}
              lr: {type: float, default: 1e-3}
              k: {type: int, default: 7}
            command: "python show.py {n} {lr} {k}"
          relog:
            parameters: {n: {type: float, default: 50}}
            command: "python relog.py {n}"
        """,
        {"relog.py": LOGS_FLOAT},
    )
    result = mlproj_run(project)
    assert argv(project) == ["50", "1e-3", "7"]
    # Logged with the text the command got, at the end, since the project did not log them.
    assert get_store().get_run(run_id_of(result)).params == {"n": "50", "lr": "1e-3", "k": "7"}

    # MLflow issues 3536/2820: the project logs float(argv) = 50.0 and the run still finishes.
    relogged = mlproj_run(project, "-e", "relog", MLFLOW_ALLOW_FILE_STORE="true")
    assert argv(project) == ["50"]
    run = get_store().get_run(run_id_of(relogged))
    assert (run.info.status, run.params) == ("FINISHED", {"n": "50.0"})
