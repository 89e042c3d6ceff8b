"""What goes into a project image and what its content hash depends on (no daemon needed),
plus one check of the built image's files against the real daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from docker_support import Recorder, execute, make_request, open_run, write_project

from mlproj.docker.images import _context_files, content_hash, repository_for
from mlproj.envs.docker import DockerManager
from mlproj.spec.project import load_project


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _context(root: Path, exclude: list[Path] | None = None) -> list[str]:
    return [rel for rel, _ in _context_files(root, exclude or [])]


def test_context_skips_vcs_caches_and_tracking_stores(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "p",
        {
            "MLproject": "x",
            "src/train.py": "x",
            "src/__pycache__/train.cpython-311.pyc": "x",
            "src/old.pyc": "x",
            ".git/HEAD": "x",
            "mlruns/0/meta.yaml": "x",
            "store/0/meta.yaml": "x",
            ".venv/bin/python": "x",
        },
    )
    assert _context(root, [root / "store"]) == ["MLproject", "src/train.py"]


def test_dockerignore_patterns_and_negation(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "p",
        {
            ".dockerignore": "# data is mounted\ndata/\n!data/keep.txt\n*.log\n/secret.env\n",
            "data/big.bin": "x",
            "data/keep.txt": "x",
            "run.log": "x",
            "logs/deep.log": "x",
            "secret.env": "x",
            "main.py": "x",
        },
    )
    assert _context(root) == [".dockerignore", "main.py", "data/keep.txt"]


def test_content_hash_follows_content_and_exec_bit_not_mtime(tmp_path: Path) -> None:
    root = _tree(tmp_path / "p", {"a.sh": "echo a", "b/c.txt": "c"})

    def digest() -> str:
        return content_hash(root, "sha256:base", base_image="base:1")

    first = digest()
    assert digest() == first
    os.utime(root / "a.sh", ns=(1, 1))  # touched, same content
    assert digest() == first
    (root / "a.sh").chmod(0o755)
    executable = digest()
    assert executable != first
    (root / "b" / "c.txt").write_text("C")
    assert digest() != executable
    assert content_hash(root, "sha256:other", base_image="base:1") != digest()
    (root / "mlruns").mkdir()
    (root / "mlruns" / "meta.yaml").write_text("new run")
    assert content_hash(root, "sha256:other", base_image="base:1") == content_hash(
        root, "sha256:other", base_image="base:1"
    )


def test_repository_names_are_valid_docker_names(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: My Project__v2!\nentry_points: {}\n")
    assert repository_for(load_project(tmp_path)) == "my-project-v2"
    (tmp_path / "MLproject").write_text("entry_points: {}\n")
    assert repository_for(load_project(tmp_path)) == "docker-project"


@pytest.mark.docker
def test_built_image_holds_exactly_the_context(
    tmp_path: Path,
    docker_daemon: str,
    tracking_uri: str,
    project_name: str,
) -> None:
    project = write_project(
        tmp_path / "proj",
        name=project_name,
        image=docker_daemon,
        command="find . -type f | sort",
        files={
            ".dockerignore": "data/\n",
            "data/huge.csv": "x",
            "src/model.py": "x",
            "src/__pycache__/model.pyc": "x",
        },
    )
    assert load_project(project.directory).name == project_name
    recorder = Recorder()
    plan = DockerManager().prepare(
        make_request(project, open_run(tracking_uri), recorder=recorder, build_image=True)
    )
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "./.dockerignore",
        "./.mlproj-build.Dockerfile",
        "./MLproject",
        "./src/model.py",
    ]
