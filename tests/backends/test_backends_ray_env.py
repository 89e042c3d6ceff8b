"""How a project's environment becomes a Ray runtime_env field (no cluster needed: only the
mapping; ``test_backends_ray.py`` runs jobs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.backends.ray.backend import runtime_packages
from mlproj.spec.project import load_project


def _project(tmp_path: Path, env_file: str, text: str) -> Path:
    (tmp_path / env_file).write_text(text)
    key = "python_env" if env_file == "python_env.yaml" else "conda_env"
    (tmp_path / "MLproject").write_text(
        f"name: p\n{key}: {env_file}\nentry_points:\n  main:\n    command: 'true'\n"
    )
    return tmp_path


PYTHON_ENV = "python: '3.11'\nbuild_dependencies: [pip]\ndependencies: [tinydb==4.8.0]\n"


@pytest.mark.parametrize(
    ("manager", "field"), [("uv", "uv"), ("virtualenv", "pip"), ("conda", "pip")]
)
def test_python_env_dependencies_go_to_ray_uv_or_pip(
    tmp_path: Path, manager: str, field: str
) -> None:
    project = load_project(_project(tmp_path, "python_env.yaml", PYTHON_ENV))
    said: list[str] = []
    assert runtime_packages(project, manager, said.append) == {field: ["pip", "tinydb==4.8.0"]}
    assert any("Python 3.11" in line and "cluster's Python" in line for line in said)


def test_the_local_env_manager_uses_the_clusters_python_as_it_is(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, "python_env.yaml", PYTHON_ENV))
    assert runtime_packages(project, "local", print) == {}


def test_a_conda_env_is_converted_for_uv_or_kept_for_conda(tmp_path: Path) -> None:
    conda = "dependencies:\n  - python=3.11\n  - numpy=1.26\n  - pip:\n    - tinydb==4.8.0\n"
    project = load_project(_project(tmp_path, "conda.yaml", conda))
    converted = runtime_packages(project, "uv", lambda _: None)
    assert "tinydb==4.8.0" in converted["uv"]
    assert any(req.startswith("numpy") for req in converted["uv"])
    kept = runtime_packages(project, "conda", lambda _: None)
    assert kept["conda"]["dependencies"][1] == "numpy=1.26"
