"""Environments are compiled to bytecode when built, whatever the caller's environment says,
and a build step that hangs is stopped at its time limit with a clear error. Real uv,
virtualenv and pip builds; the hanging index is a real socket that never answers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlproj.envs import EnvRequest
from mlproj.envs.python.uv import UvManager
from mlproj.envs.python.venv_base import VenvManager
from mlproj.envs.python.virtualenv import VirtualenvManager
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

pytestmark = pytest.mark.slow


def _project(root: Path, env_yaml: str) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "python_env.yaml").write_text(env_yaml)
    return Project(
        directory=root,
        spec_path=None,
        name=None,
        entry_points={},
        env_type="python_env",
        env_file=root / "python_env.yaml",
    )


def _request(project: Project, **env: str) -> EnvRequest:
    return EnvRequest(
        project=project,
        command="python -c 'import six, idna; print(six.__file__)'",
        env={**os.environ, **env},
        run_id="run1",
        experiment_id="0",
        tracking_uri="file:///tmp/mlruns",
        artifact_uri="file:///tmp/mlruns/0/run1/artifacts",
    )


@pytest.mark.parametrize("manager", [UvManager, VirtualenvManager])
def test_built_environment_holds_bytecode_even_when_the_caller_disables_it(
    tmp_path: Path, manager: type[VenvManager]
) -> None:
    project = _project(tmp_path / "proj", "python: '3.11'\ndependencies: [six, idna]\n")
    # Common in containers: without compiling at build time, every run would compile again.
    plan = manager().prepare(_request(project, PYTHONDONTWRITEBYTECODE="1"))
    assert plan.env["PYTHONDONTWRITEBYTECODE"] == "1"  # the run keeps the caller's setting
    env_dir = Path(plan.env["VIRTUAL_ENV"])
    (site,) = env_dir.glob("lib/python3.*/site-packages")
    assert list((site / "__pycache__").glob("six.cpython-3*.pyc"))  # a module
    assert list((site / "idna" / "__pycache__").glob("core.cpython-3*.pyc"))  # a package
    done = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An http:// base URL whose server accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_hanging_build_step_is_stopped_at_its_time_limit(
    tmp_path: Path, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_BUILD_TIMEOUT", "3")
    wheel = f"{silent_server}/six-1.16.0-py2.py3-none-any.whl"
    project = _project(tmp_path / "proj", f"python: '3.11'\ndependencies: ['six @ {wheel}']\n")
    started = time.monotonic()
    with pytest.raises(ExecutionException) as caught:
        UvManager().prepare(_request(project, UV_HTTP_TIMEOUT="600"))
    assert time.monotonic() - started < 60
    message = str(caught.value)
    assert "installing dependencies" in message
    assert "no result within 3 s; MLPROJ_BUILD_TIMEOUT sets the limit" in message
    # Nothing of the stopped step is left: no uv process still waiting on the server.
    uv_alive = subprocess.run(
        ["pgrep", "-f", wheel.replace(".", "\\.")], capture_output=True, text=True, check=False
    )
    assert uv_alive.stdout.strip() == ""


def test_bad_build_timeout_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_BUILD_TIMEOUT", "soon")
    project = _project(tmp_path / "proj", "python: '3.11'\ndependencies: [six]\n")
    with pytest.raises(ExecutionException, match=r"MLPROJ_BUILD_TIMEOUT='soon' is invalid"):
        UvManager().prepare(_request(project))
