"""The uv manager with real environments built from PyPI (small packages: six, idna)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlproj.envs import EnvRequest, LaunchPlan, choose_manager
from mlproj.envs.cache import MARKER, envs_root
from mlproj.envs.python.interpreters import find_interpreter
from mlproj.envs.python.uv import UvManager
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project, load_project

pytestmark = pytest.mark.slow

PY310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")
needs_py310 = pytest.mark.skipif(
    not PY310.exists(), reason="needs pyenv's Python 3.10.13 in /root/.pyenv/versions"
)
PROBE = "python -c 'import sys, six, idna; print(sys.version.split()[0], sys.prefix)'"


def make_project(root: Path, env_type: str, files: dict[str, str]) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    env_file = next((root / n for n in files if n.endswith(".yaml")), None)
    return Project(
        directory=root,
        spec_path=None,
        name=None,
        entry_points={},
        env_type=env_type,  # type: ignore[arg-type]
        env_file=env_file,
    )


def env_request(project: Project, logs: list[str], command: str = PROBE, **env: str) -> EnvRequest:
    return EnvRequest(
        project=project,
        command=command,
        env={**os.environ, **env},
        run_id="run1",
        experiment_id="0",
        tracking_uri="file:///tmp/mlruns",
        artifact_uri="file:///tmp/mlruns/0/run1/artifacts",
        log=logs.append,
    )


def launch(plan: LaunchPlan) -> str:
    """Start the entry point the way the local backend does: argv, env and cwd of the plan."""
    done = subprocess.run(
        plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_py310
def test_python_310_env_is_built_then_reused(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj",
        "python_env",
        {
            "python_env.yaml": """
                python: "3.10"
                build_dependencies: [pip]
                dependencies: [six, -r requirements.txt]
            """,
            "requirements.txt": "idna\n",
        },
    )
    manager = choose_manager(project, None)
    assert (manager.name, manager.tag_value) == ("uv", "uv")
    manager.validate(project)
    logs: list[str] = []
    tags: dict[str, str] = {}
    request = env_request(project, logs)
    request.set_tags = tags.update
    plan = manager.prepare(request)
    version, prefix = launch(plan).split()
    assert version == "3.10.13"
    assert tags == {"mlproj.env": Path(prefix).parent.name}
    assert plan.env["VIRTUAL_ENV"] == prefix
    assert plan.cwd == project.directory
    assert plan.argv == ["bash", "-c", PROBE]
    assert any(line.startswith("Creating environment uv-") for line in logs)

    entry = Path(prefix).parent
    meta = json.loads((entry / MARKER).read_text())
    assert meta["schema"] == 1
    assert meta["inputs"]["interpreter"] == [str(PY310.resolve()), "3.10.13"]
    assert meta["inputs"]["spec"]["dependencies"] == ["six", "-r requirements.txt"]
    assert "installing dependencies" in (entry / "build.log").read_text()

    # Warm: same environment, nothing built, fast.
    warm_logs: list[str] = []
    started = time.perf_counter()
    warm = UvManager().prepare(env_request(project, warm_logs))
    elapsed = time.perf_counter() - started
    assert warm.env["VIRTUAL_ENV"] == prefix
    assert warm_logs == []
    assert elapsed < 0.5, elapsed

    # "3.10.13" resolves to the same interpreter as "3.10": the same environment serves both.
    text = (project.directory / "python_env.yaml").read_text()
    (project.directory / "python_env.yaml").write_text(text.replace('"3.10"', '"3.10.13"'))
    exact = UvManager().prepare(env_request(project, []))
    assert exact.env["VIRTUAL_ENV"] == prefix


def test_changed_requirement_file_gives_a_new_env(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj",
        "python_env",
        {"python_env.yaml": "dependencies: [-r requirements.txt]\n", "requirements.txt": "six\n"},
    )
    command = "python -c 'import six, sys; print(sys.prefix)'"
    first = launch(UvManager().prepare(env_request(project, [], command)))
    (project.directory / "requirements.txt").write_text("six\nidna\n")
    logs: list[str] = []
    plan = UvManager().prepare(
        env_request(project, logs, "python -c 'import idna, sys; print(sys.prefix)'")
    )
    second = launch(plan)
    assert second != first
    assert Path(first).is_dir()  # the old env is left for other users; prune removes it
    # The user is told why a new environment is built.
    assert any("changed since uv-" in line and "requirements.txt changed" in line for line in logs)


def test_concurrent_runs_build_one_env_once(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj", "python_env", {"python_env.yaml": "dependencies: [six, idna]\n"}
    )
    script = textwrap.dedent(
        """
        import json, os, subprocess, sys
        from pathlib import Path
        from mlproj.envs import EnvRequest
        from mlproj.envs.python.uv import UvManager
        from mlproj.spec.project import Project
        root = Path(sys.argv[1])
        project = Project(root, None, None, {}, "python_env", root / "python_env.yaml")
        logs = []
        request = EnvRequest(project, "python -c 'import six, idna, sys; print(sys.prefix)'",
                             dict(os.environ), "r", "0", "file:///x", "file:///y", log=logs.append)
        plan = UvManager().prepare(request)
        out = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True,
                             text=True, check=True).stdout.strip()
        print(json.dumps({"prefix": out, "logs": logs}))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(project.directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    prefixes = {r["prefix"] for r in results}
    assert len(prefixes) == 1
    builders = [r for r in results if any(s.startswith("Creating environment") for s in r["logs"])]
    assert len(builders) == 1, results
    entries = [p for p in envs_root().iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    log = (entries[0] / "build.log").read_text()
    assert log.count("## creating the virtual environment") == 1


def test_build_failure_shows_the_log_tail_and_keeps_the_log(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj",
        "python_env",
        {"python_env.yaml": "dependencies: [mlproj-no-such-package-4242==1.0]\n"},
    )
    with pytest.raises(ExecutionException) as info:
        UvManager().prepare(env_request(project, []))
    message = str(info.value)
    assert "failed while installing dependencies" in message
    assert "Last lines of the build log:" in message
    assert "mlproj-no-such-package-4242" in message.split("Last lines of the build log:")[1]
    log_path = Path(message.rsplit("Full build log: ", 1)[1].strip())
    assert log_path.is_file()
    assert "mlproj-no-such-package-4242" in log_path.read_text()
    entry = log_path.parent
    assert not (entry / MARKER).exists()
    assert not (entry / "env").exists()  # a failed env is never left for reuse


def test_half_built_env_without_marker_is_rebuilt(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj", "python_env", {"python_env.yaml": "dependencies: [six]\n"}
    )
    command = "python -c 'import six, sys; print(sys.prefix)'"
    prefix = Path(launch(UvManager().prepare(env_request(project, [], command))))
    # Simulate a build killed half-way: marker gone, junk in the env.
    (prefix.parent / MARKER).unlink()
    (prefix / "junk").write_text("half-built")
    logs: list[str] = []
    again = Path(launch(UvManager().prepare(env_request(project, logs, command))))
    assert again == prefix
    assert not (prefix / "junk").exists()
    assert any("an earlier build did not finish" in line for line in logs)
    assert (prefix.parent / MARKER).exists()


@needs_py310
def test_conda_yaml_is_converted_and_run_with_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_CONDA_HOME", raising=False)
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_text(
        "name: converted\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: python x.py\n"
    )
    (root / "conda.yaml").write_text(
        textwrap.dedent(
            """
            name: small
            channels: [conda-forge]
            dependencies:
              - python=3.10
              - six
              - pip
              - r-base          # an R package: tried on PyPI, not there, dropped
              - libgfortran-ng  # a native library: dropped without trying
              - pip:
                - idna
            """
        )
    )
    project = load_project(root)
    assert project.env_type == "conda_env"
    manager = choose_manager(project, None)  # no conda on this machine
    assert manager.name == "uv"
    logs: list[str] = []
    plan = manager.prepare(env_request(project, logs))
    version, _prefix = launch(plan).split()
    assert version.startswith("3.10.")
    warning = [line for line in logs if line.startswith("Warning:")]
    assert len(warning) == 1
    assert "r-base" in warning[0] and "libgfortran-ng" in warning[0]
    assert "six" not in warning[0]
    # Warm runs repeat the warning from the cache's record, without probing PyPI again.
    warm: list[str] = []
    manager.prepare(env_request(project, warm))
    assert [line for line in warm if line.startswith("Warning:")] == warning


def test_uv_lock_is_restored_with_uv_sync(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "locked"
            version = "0.1"
            requires-python = ">=3.9"
            dependencies = ["six"]
            """
        )
    )
    (root / "python_env.yaml").write_text("dependencies: [idna]\n")
    subprocess.run([sys.executable, "-m", "uv", "lock"], cwd=root, check=True, capture_output=True)
    project = Project(root, None, None, {}, "python_env", root / "python_env.yaml")
    logs: list[str] = []
    plan = UvManager().prepare(
        env_request(project, logs, "python -c 'import six, sys; print(sys.prefix)'")
    )
    prefix = Path(launch(plan))
    log = (prefix.parent / "build.log").read_text()
    assert "uv sync --frozen" in log
    assert not (root / ".venv").exists()
    assert any("uv.lock decides the environment" in line for line in logs)
    # The lock file is part of the key: a changed lock gives another environment.
    (root / "uv.lock").write_text((root / "uv.lock").read_text() + "\n")
    other = Path(
        launch(
            UvManager().prepare(
                env_request(project, [], "python -c 'import sys; print(sys.prefix)'")
            )
        )
    )
    assert other != prefix


def test_missing_interpreter_fails_with_the_list_of_interpreters_found(tmp_path: Path) -> None:
    if find_interpreter("3.14", tmp_path / "probes.json") is not None:
        pytest.skip("a Python 3.14 is installed here; the test needs a version that is absent")
    project = make_project(tmp_path / "proj", "python_env", {"python_env.yaml": "python: '3.14'\n"})
    # An unreachable download mirror stands for "offline".
    request = env_request(
        project, [], UV_PYTHON_INSTALL_MIRROR="http://127.0.0.1:9/", UV_HTTP_RETRIES="0"
    )
    with pytest.raises(ExecutionException) as info:
        UvManager().prepare(request)
    message = str(info.value)
    assert (
        "python_env.yaml: python: '3.14': no Python interpreter on this machine matches" in message
    )
    assert "downloading one with `uv python install` failed" in message
    assert "Interpreters found:" in message
    assert sys.version.split()[0] in message
    assert "uv python install 3.14" in message

    never = env_request(project, [], UV_PYTHON_DOWNLOADS="never")
    with pytest.raises(ExecutionException, match="downloads are disabled"):
        UvManager().prepare(never)
