"""The virtualenv manager: the virtualenv package + pip, with an interpreter already installed
(never a pyenv source build)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mlproj.envs import EnvRequest, choose_manager
from mlproj.spec.project import Project

pytestmark = pytest.mark.slow

PY310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")


@pytest.mark.skipif(not PY310.exists(), reason="needs pyenv's Python 3.10.13 in /root/.pyenv")
def test_virtualenv_manager_builds_with_pip_and_reuses(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "python_env.yaml").write_text('python: "3.10.13"\ndependencies: [six]\n')
    project = Project(root, None, None, {}, "python_env", root / "python_env.yaml")
    manager = choose_manager(project, "virtualenv")
    assert (manager.name, manager.tag_value) == ("virtualenv", "virtualenv")
    manager.validate(project)
    command = "python -c 'import six, sys; print(sys.version.split()[0], sys.prefix)'"
    logs: list[str] = []
    request = EnvRequest(project, command, dict(os.environ), "r", "0", "file:///x", "file:///y",
                         log=logs.append)  # fmt: skip
    plan = manager.prepare(request)
    done = subprocess.run(
        plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    version, prefix = done.stdout.split()
    assert version == "3.10.13"
    assert prefix == plan.env["VIRTUAL_ENV"]
    assert Path(prefix).parent.name.startswith("virtualenv-")
    assert (Path(prefix) / "bin" / "pip").exists()  # seeded by virtualenv, used for installs
    log = (Path(prefix).parent / "build.log").read_text()
    assert "-m virtualenv" in log and "-m pip install" in log
    assert "pyenv install" not in log

    again: list[str] = []
    request.log = again.append
    assert manager.prepare(request).env["VIRTUAL_ENV"] == prefix
    assert again == []
