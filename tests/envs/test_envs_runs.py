"""Whole runs through ``mlproj.run`` with the env managers: tags, FAILED with the log tail."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import mlproj
from mlproj.errors import ExecutionException
from mlproj.tracking import get_store

pytestmark = pytest.mark.slow

MLPROJECT = """
name: envs-e2e
python_env: python_env.yaml
entry_points:
  main:
    parameters:
      out: {type: string}
    command: "python write_prefix.py {out}"
"""


# The interpreter's prefix, plus "+six" when six (the env's only dependency) is importable.
WRITE_PREFIX = """
import importlib.util, sys
has_six = importlib.util.find_spec("six") is not None
open(sys.argv[1], "w").write(sys.prefix + ("+six" if has_six else ""))
"""


def write_project(root: Path, python_env: str) -> Path:
    root.mkdir()
    (root / "MLproject").write_text(textwrap.dedent(MLPROJECT))
    (root / "write_prefix.py").write_text(WRITE_PREFIX)
    (root / "python_env.yaml").write_text(python_env)
    return root


def test_python_env_run_uses_a_cached_uv_env(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", "dependencies: [six]\n")
    out = tmp_path / "prefix.txt"
    run = mlproj.run(str(project), parameters={"out": str(out)})
    assert run.get_status() == "FINISHED"
    tags = get_store().get_run(run.run_id).tags
    assert tags["mlflow.project.env"] == "uv"
    env_name = tags["mlproj.env"]
    assert out.read_text().endswith(f"/envs/{env_name}/env+six")

    # env_manager="local": the caller's own interpreter, whatever it has installed.
    local = mlproj.run(str(project), parameters={"out": str(out)}, env_manager="local")
    assert local.get_status() == "FINISHED"
    assert out.read_text().removesuffix("+six") == sys.prefix
    assert "mlflow.project.env" not in get_store().get_run(local.run_id).tags


def test_failed_build_marks_the_run_failed_with_the_log_tail(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", "dependencies: [mlproj-no-such-pkg-9191]\n")
    with pytest.raises(ExecutionException) as info:
        mlproj.run(str(project), parameters={"out": str(tmp_path / "x")})
    assert "Full build log: " in str(info.value)
    store = get_store()
    runs = store.search_runs(["0"])
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert "mlproj-no-such-pkg-9191" in runs[0].tags.get("mlproj.error", "")


def test_float_python_is_refused_before_any_run_is_opened(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", "python: 3.10\n")
    with pytest.raises(ExecutionException, match='quote the version: python: "3.10"'):
        mlproj.run(str(project), parameters={"out": "x"})
    assert get_store().search_runs(["0"]) == []
