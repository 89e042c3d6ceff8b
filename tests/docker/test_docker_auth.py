"""docker_auth against a real registry (Debian's docker-registry, htpasswd auth, on loopback):
pull and push work, and the password never shows up in argv, logs, tags, errors or the
user's Docker config."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_support import Recorder, docker, execute, make_request, open_run, write_project

from mlproj.docker.images import push_image
from mlproj.envs.docker import DockerManager
from mlproj.errors import ExecutionException
from shared_servers import free_port

pytestmark = pytest.mark.docker

USER = "alice"
PASSWORD = 'pw with spaces; "quotes" $HOME'


@pytest.fixture
def registry(tmp_path: Path, docker_daemon: str) -> Iterator[str]:
    """host:port of a registry that requires USER/PASSWORD."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry or htpasswd missing (run .ci/docker-setup.sh)")
    folder = tmp_path / "registry"
    folder.mkdir()
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    ).stdout
    (folder / "htpasswd").write_text(htpasswd)
    port = free_port()
    (folder / "config.yml").write_text(
        f"""version: 0.1
log: {{level: error}}
storage: {{filesystem: {{rootdirectory: {folder / "data"}}}}}
http: {{addr: "127.0.0.1:{port}", secret: mlproj-test}}
auth: {{htpasswd: {{realm: mlproj-test, path: {folder / "htpasswd"}}}}}
"""
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(folder / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_push_then_pull_with_docker_auth_keeps_the_password_secret(
    tmp_path: Path,
    docker_daemon: str,
    registry: str,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_docker_config = tmp_path / "user-docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(user_docker_config))
    remote = f"{registry}/team/busybox:1"
    assert docker("tag", docker_daemon, remote).returncode == 0
    auth = {"username": USER, "password": PASSWORD}
    logs: list[str] = []

    with pytest.raises(ExecutionException) as unauthenticated:
        push_image(remote, log=logs.append)
    assert "credentials" in str(unauthenticated.value)
    digest = push_image(remote, auth, log=logs.append)
    assert digest.startswith("sha256:")
    assert docker("image", "rm", remote).returncode == 0

    project = write_project(tmp_path / "proj", image=remote, command="echo pulled and ran")
    recorder = Recorder()
    plan = DockerManager().prepare(
        make_request(project, open_run(tracking_uri), recorder=recorder, docker_auth=auth)
    )
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pulled and ran\n"
    assert any(line.startswith(f"Pulling Docker image {remote}") for line in recorder.logs)

    with pytest.raises(ExecutionException) as wrong:
        push_image(remote, {"username": USER, "password": PASSWORD + "x"})
    assert "login to" in str(wrong.value)

    seen = [
        *plan.argv,
        *logs,
        *recorder.logs,
        *recorder.tags.values(),
        str(unauthenticated.value),
        str(wrong.value),
        result.stdout,
        result.stderr,
    ]
    assert not [text for text in seen if PASSWORD in text]
    assert PASSWORD not in plan.env.values()
    # The login went to a temporary config, not the user's.
    assert not user_docker_config.exists() or PASSWORD not in "".join(
        p.read_text(errors="replace") for p in user_docker_config.rglob("*") if p.is_file()
    )
    docker("image", "rm", remote)


def test_unknown_docker_auth_key_is_named_without_values(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    project = write_project(tmp_path / "proj", image=docker_daemon, command="true")
    with pytest.raises(ExecutionException, match=r"docker_auth: unknown key\(s\) passwd") as info:
        DockerManager().prepare(
            make_request(
                project,
                open_run(tracking_uri),
                docker_auth={"username": "u", "passwd": "hidden-value"},
            )
        )
    assert "hidden-value" not in str(info.value)
