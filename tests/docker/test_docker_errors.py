"""User-facing failures: one line each, saying what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from docker_support import make_request, open_run, write_project

from mlproj.envs.docker import DockerManager
from mlproj.envs.docker_run import docker_arg_options
from mlproj.errors import ExecutionException
from mlproj.spec.project import DockerEnv, EntryPoint, Project


def _one_line(excinfo: pytest.ExceptionInfo[ExecutionException]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_docker_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    project = write_project(tmp_path / "proj", image="anything:1", command="true")
    with pytest.raises(ExecutionException) as excinfo:
        DockerManager().validate(project)
    message = _one_line(excinfo)
    assert "Docker is not installed" in message
    assert "docs.docker.com" in message


@pytest.mark.docker
def test_daemon_not_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = tmp_path / "dead.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    project = write_project(tmp_path / "proj", image="anything:1", command="true")
    with pytest.raises(ExecutionException) as excinfo:
        DockerManager().validate(project)
    message = _one_line(excinfo)
    assert f"Cannot reach the Docker daemon at unix://{dead}" in message
    assert "DOCKER_HOST" in message


@pytest.mark.docker
def test_image_missing_and_not_pullable(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    # Port 9 on loopback refuses connections at once: a registry that cannot be reached.
    project = write_project(tmp_path / "proj", image="127.0.0.1:9/nothing/here:1", command="true")
    with pytest.raises(ExecutionException) as excinfo:
        DockerManager().prepare(make_request(project, open_run(tracking_uri)))
    message = _one_line(excinfo)
    assert "Docker image '127.0.0.1:9/nothing/here:1' is not on this machine" in message
    assert "could not be pulled" in message


def test_project_without_image() -> None:
    project = Project(
        directory=Path("/somewhere"),
        spec_path=Path("/somewhere/MLproject"),
        name="p",
        entry_points={"main": EntryPoint("main", "true")},
        env_type="docker",
        env_file=None,
        docker_env=DockerEnv(image=""),
    )
    with pytest.raises(ExecutionException, match=r"/somewhere/MLproject: docker_env.image"):
        DockerManager().validate(project)


def test_docker_args_translation_and_bad_names() -> None:
    assert docker_arg_options(
        {"gpus": "all", "memory": "1g", "privileged": True, "m": "2g", "t": True, "x": False}
    ) == ["--gpus", "all", "--memory", "1g", "--privileged", "-m", "2g", "-t"]
    assert docker_arg_options({"init": "false", "cpus": "-1", "k": "True"}) == [
        "--init=false",
        "--cpus=-1",
        "-k=True",
    ]
    with pytest.raises(ExecutionException, match=r"docker_args: invalid option name '--evil'"):
        docker_arg_options({"--evil": "1"})
    with pytest.raises(ExecutionException, match="invalid option name 'a b'"):
        docker_arg_options({"a b": True})


def test_error_messages_do_not_mention_os_environ_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing variable is named, never a value of any other variable."""
    monkeypatch.setenv("MLPROJ_TEST_SECRET", "s3cr3t-value")
    monkeypatch.delenv("MLPROJ_TEST_MISSING", raising=False)
    project = write_project(
        tmp_path / "proj",
        image="anything:1",
        command="true",
        docker_env={"environment": ["MLPROJ_TEST_SECRET", "MLPROJ_TEST_MISSING"]},
    )
    with pytest.raises(ExecutionException) as excinfo:
        DockerManager().validate(project)
    assert "MLPROJ_TEST_MISSING" in str(excinfo.value)
    assert "s3cr3t-value" not in str(excinfo.value)
    assert os.environ["MLPROJ_TEST_SECRET"] == "s3cr3t-value"
