"""Fixtures for the docker tests: a real daemon started by .ci/docker-setup.sh, local base
images (Docker Hub is unreachable), isolated stores, image cleanup."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.docker_support import BUSYBOX_IMAGE, PYTHON_IMAGE

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / ".ci" / "docker-setup.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def _docker_ok() -> bool:
    return shutil.which("docker") is not None and _run("docker", "info").returncode == 0


def _image_exists(image: str) -> bool:
    return _run("docker", "image", "inspect", image).returncode == 0


@pytest.fixture(scope="session")
def docker_daemon() -> str:
    """A reachable daemon with the busybox base image; runs the (idempotent) setup script."""
    if not (_docker_ok() and _image_exists(BUSYBOX_IMAGE)):
        if os.geteuid() != 0 and shutil.which("sudo") is None:
            if not _docker_ok():
                pytest.skip("no Docker daemon, and not root to start one with .ci/docker-setup.sh")
        setup = subprocess.run(
            ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
        )
        if setup.returncode != 0 or not _docker_ok():
            pytest.skip(
                f"Docker cannot run here: .ci/docker-setup.sh failed: {setup.stderr[-800:]}"
            )
    return BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def python_image(docker_daemon: str) -> str:
    if not _image_exists(PYTHON_IMAGE):
        pytest.skip(f"{PYTHON_IMAGE} was not built by .ci/docker-setup.sh (debootstrap failed?)")
    return PYTHON_IMAGE


@pytest.fixture(autouse=True)
def _file_store_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow >= 3.13 refuses file stores unless this is set; the tests read runs with it.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture
def unique_name() -> str:
    return f"mlproj-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def image_cleanup() -> Iterator[list[str]]:
    """Repositories to delete (every tag) after the test."""
    repositories: list[str] = []
    yield repositories
    for repo in repositories:
        ids = _run("docker", "image", "ls", "-q", "--filter", f"reference={repo}").stdout.split()
        if ids:
            _run("docker", "image", "rm", "-f", *set(ids))


@pytest.fixture
def project_name(unique_name: str, image_cleanup: list[str]) -> str:
    """A unique project name; the images built for it (its repository) go after the test."""
    image_cleanup.append(unique_name)
    return unique_name


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return (tmp_path / "mlruns").as_uri()
