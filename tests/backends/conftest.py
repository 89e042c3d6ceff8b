"""Fixtures for the backend tests: Docker, a real registry on loopback, the Kubernetes stand-in."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backends_k8s_standin import KubernetesStandin  # noqa: E402

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """A real Docker registry (distribution) on loopback; the daemon treats 127.0.0.0/8 as
    insecure, so plain HTTP works for push and pull."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n",
            encoding="utf-8",
        )
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Registry:
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(f"http://{self.address}/v2/{repository}/tags/list") as r:
            import json

            return list(json.load(r).get("tags") or [])


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, docker_ready: str) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry (Debian package docker-registry) is not installed")
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


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
