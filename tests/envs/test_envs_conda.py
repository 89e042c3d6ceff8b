"""The conda manager's command construction and activation.

conda, mamba and micromamba cannot be installed on these machines (no conda channels are
reachable), so a stand-in executable plays them: a bash script that records its arguments and,
for a create command, makes a prefix whose ``bin/python`` is the real interpreter running the
tests. Everything else (lookup rules, cache, lock, marker, activation, the launched process) is
real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlproj.envs import EnvRequest, LaunchPlan, choose_manager
from mlproj.envs.conda import CondaManager, find_conda
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

STANDIN = """#!/bin/bash
# Stand-in for {name} (see the module docstring): records calls, fakes a prefix.
echo "{name} $*" >> {calls}
[ -n "$STANDIN_FAIL" ] && {{ echo "ResolvePackageNotFound: - nosuchpkg" >&2; exit 1; }}
case "$1" in
  env|create)
    prefix=""
    while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix="$2"; shift; done
    mkdir -p "$prefix/bin" "$prefix/conda-meta"
    ln -s {python} "$prefix/bin/python"
    if [ -n "$STANDIN_ACTIVATE_D" ]; then
      mkdir -p "$prefix/etc/conda/activate.d"
      echo 'export STANDIN_ACTIVATED=yes' > "$prefix/etc/conda/activate.d/standin.sh"
    fi
    ;;
  shell.bash|shell)
    cat <<'HOOK'
{name}() {{
  if [ "$1" = activate ]; then
    export CONDA_PREFIX="$2" PATH="$2/bin:$PATH"
    for f in "$2"/etc/conda/activate.d/*.sh; do . "$f"; done
  fi
}}
HOOK
    ;;
esac
"""


def standin(folder: Path, name: str, calls: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text(STANDIN.format(name=name, calls=calls, python=sys.executable))
    exe.chmod(0o755)
    return exe


def standin_on_path(folder: Path, name: str, calls: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in as the only conda tool on PATH (besides /usr/bin and /bin)."""
    exe = standin(folder, name, calls)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return exe


@pytest.fixture
def clean_conda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_CONDA_HOME", "CONDA_EXE", "MAMBA_EXE", "MLFLOW_CONDA_CREATE_ENV_CMD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")


def conda_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conda.yaml").write_text(
        textwrap.dedent(
            """
            name: demo
            dependencies:
              - python=3.10
              - numpy=1.26
              - pip:
                - -r requirements.txt
            """
        )
    )
    (root / "requirements.txt").write_text("six\n")
    return Project(root, None, None, {}, "conda_env", root / "conda.yaml")


def env_request(project: Project, command: str, logs: list[str] | None = None) -> EnvRequest:
    return EnvRequest(
        project=project,
        command=command,
        env=dict(os.environ),
        run_id="r",
        experiment_id="0",
        tracking_uri="file:///x",
        artifact_uri="file:///y",
        log=(logs if logs is not None else []).append,
    )


def launch(plan: LaunchPlan) -> str:
    done = subprocess.run(
        plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# The stand-in prefix's python is a symlink, so sys.executable (not sys.prefix) shows the env.
PRINT_PREFIX = (
    "python -c 'import os, sys; print(sys.executable, os.environ.get(\"STANDIN_ACTIVATED\"))'"
)


@pytest.mark.usefixtures("clean_conda_env")
def test_conda_on_path_creates_a_cached_prefix_from_conda_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    standin_on_path(tmp_path / "conda" / "bin", "conda", calls, monkeypatch)
    project = conda_project(tmp_path / "proj")
    manager = choose_manager(project, None)
    assert isinstance(manager, CondaManager)
    manager.validate(project)
    plan = manager.prepare(env_request(project, PRINT_PREFIX))
    prefix = Path(plan.env["CONDA_PREFIX"])
    assert prefix.name == "env" and prefix.parent.name.startswith("conda-")
    assert calls.read_text().splitlines() == [
        f"conda env create --prefix {prefix} --file {project.directory / 'conda.yaml'}"
    ]
    # No activate.d scripts: activated by variables, no shell hook needed.
    assert plan.argv == ["bash", "-c", PRINT_PREFIX]
    assert plan.env["PATH"].startswith(f"{prefix}/bin:")
    assert launch(plan).split()[0] == str(prefix / "bin" / "python")

    manager.prepare(env_request(project, PRINT_PREFIX))  # warm: no second create
    assert len(calls.read_text().splitlines()) == 1
    # A changed pip requirement file gives a new conda environment.
    (project.directory / "requirements.txt").write_text("six\nidna\n")
    other = manager.prepare(env_request(project, PRINT_PREFIX))
    assert other.env["CONDA_PREFIX"] != str(prefix)


@pytest.mark.usefixtures("clean_conda_env")
def test_mlflow_conda_home_and_create_env_cmd_pick_mamba(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    home = tmp_path / "miniforge"
    standin(home / "bin", "conda", calls)
    standin(home / "bin", "mamba", calls)
    monkeypatch.setenv("MLFLOW_CONDA_HOME", str(home))
    monkeypatch.setenv("MLFLOW_CONDA_CREATE_ENV_CMD", "mamba")
    tools = find_conda()
    assert tools is not None
    assert (tools.conda, tools.create) == (home / "bin" / "conda", home / "bin" / "mamba")
    project = conda_project(tmp_path / "proj")
    CondaManager().prepare(env_request(project, "true"))
    assert calls.read_text().startswith("mamba env create --prefix ")


@pytest.mark.usefixtures("clean_conda_env")
def test_conda_exe_and_activation_scripts_use_conda_activate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    exe = standin(tmp_path / "conda" / "bin", "conda", calls)
    monkeypatch.setenv("CONDA_EXE", str(exe))
    monkeypatch.setenv("STANDIN_ACTIVATE_D", "1")
    project = conda_project(tmp_path / "proj")
    plan = CondaManager().prepare(env_request(project, PRINT_PREFIX))
    script = plan.argv[2]
    assert script.startswith(f'eval "$({exe} shell.bash hook)" && conda activate ')
    assert script.endswith(f" 1>&2 && {PRINT_PREFIX}")
    executable, activated = launch(plan).split()
    assert activated == "yes"  # the env's activate.d script ran
    assert executable.endswith("/env/bin/python")


@pytest.mark.usefixtures("clean_conda_env")
def test_micromamba_has_its_own_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    standin_on_path(tmp_path / "mm" / "bin", "micromamba", calls, monkeypatch)
    monkeypatch.setenv("STANDIN_ACTIVATE_D", "1")
    project = conda_project(tmp_path / "proj")
    plan = CondaManager().prepare(env_request(project, PRINT_PREFIX))
    line = calls.read_text().splitlines()[0]
    assert line.startswith("micromamba create --yes --prefix ")
    assert line.endswith(f"--file {project.directory / 'conda.yaml'}")
    assert 'shell hook --shell bash)" && micromamba activate ' in plan.argv[2]
    assert launch(plan).split()[1] == "yes"


@pytest.mark.usefixtures("clean_conda_env")
def test_explicit_conda_without_conda_is_a_clear_error(tmp_path: Path) -> None:
    project = conda_project(tmp_path / "proj")
    manager = choose_manager(project, "conda")
    with pytest.raises(ExecutionException) as info:
        manager.validate(project)
    message = str(info.value)
    assert message.startswith("Could not find a conda executable: no conda, mamba or micromamba")
    assert "MLFLOW_CONDA_HOME" in message and "--env-manager uv" in message


@pytest.mark.usefixtures("clean_conda_env")
def test_bad_conda_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = conda_project(tmp_path / "proj")
    monkeypatch.setenv("MLFLOW_CONDA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(ExecutionException, match=r"MLFLOW_CONDA_HOME=.*nowhere has no bin/conda"):
        CondaManager().validate(project)
    standin(tmp_path / "nowhere" / "bin", "conda", tmp_path / "calls.txt")
    monkeypatch.setenv("MLFLOW_CONDA_CREATE_ENV_CMD", "mamba-missing")
    with pytest.raises(ExecutionException, match="MLFLOW_CONDA_CREATE_ENV_CMD=mamba-missing"):
        CondaManager().validate(project)


@pytest.mark.usefixtures("clean_conda_env")
def test_conda_failure_shows_the_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standin_on_path(tmp_path / "conda" / "bin", "conda", tmp_path / "calls.txt", monkeypatch)
    monkeypatch.setenv("STANDIN_FAIL", "1")
    project = conda_project(tmp_path / "proj")
    with pytest.raises(ExecutionException) as info:
        CondaManager().prepare(env_request(project, "true"))
    message = str(info.value)
    assert "failed while creating the conda environment with conda (exit code 1)" in message
    assert "ResolvePackageNotFound: - nosuchpkg" in message
    assert "Full build log: " in message
