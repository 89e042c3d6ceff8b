"""Fixtures for the backend tests: Docker, a real registry on loopback, the Kubernetes stand-in."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.backends_databricks_standin import TOKEN as DATABRICKS_TOKEN
from tests.backends.backends_databricks_standin import DatabricksStandin
from tests.backends.backends_k8s_standin import KubernetesStandin
from tests.backends.backends_servers import Registry

BUSYBOX_IMAGE = "mlproj-ci/busybox:1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def _image_exists(image: str) -> bool:
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    return out.returncode == 0


@pytest.fixture(scope="session")
def docker_ready() -> str:
    """A reachable Docker daemon with the busybox base image (built by .ci/docker-setup.sh)."""
    setup = REPO_ROOT / ".ci" / "docker-setup.sh"
    if (not _docker_ok() or not _image_exists(BUSYBOX_IMAGE)) and setup.is_file():
        subprocess.run(
            ["bash", str(setup)],
            env={**os.environ, "MLPROJ_CI_PYTHON_IMAGE": "0"},
            capture_output=True,
            check=False,
        )
    if not _docker_ok():
        pytest.skip("no Docker daemon reachable (run .ci/docker-setup.sh)")
    if not _image_exists(BUSYBOX_IMAGE):
        pytest.skip(f"base image {BUSYBOX_IMAGE} missing (run .ci/docker-setup.sh)")
    return BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, docker_ready: str) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry (Debian package docker-registry) is not installed")
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()
    # The project images the tests built and pushed: not needed once the registry is gone.
    listed = subprocess.run(
        ["docker", "images", "-q", "--filter", f"reference={reg.address}/*/*"],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = sorted(set(listed.stdout.split()))
    if ids:
        subprocess.run(["docker", "rmi", "-f", *ids], capture_output=True, check=False)


@pytest.fixture
def k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubernetesStandin]:
    """The Kubernetes API stand-in and its kubelet; KUBECONFIG points the real client at it."""
    standin = KubernetesStandin().start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(standin.kubeconfig(), encoding="utf-8")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBE_MLFLOW_TRACKING_URI", raising=False)
    yield standin
    standin.stop()


@pytest.fixture
def databricks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DatabricksStandin]:
    """The Databricks stand-in; the SDK finds it through DATABRICKS_HOST / DATABRICKS_TOKEN."""
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)
    standin = DatabricksStandin(tmp_path / "databricks").start()
    monkeypatch.setenv("DATABRICKS_HOST", standin.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", DATABRICKS_TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.databrickscfg leaks in
    yield standin
    standin.stop()
