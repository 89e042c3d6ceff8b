"""build_image=True: a project image FROM the base image, tagged by content, reused unchanged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from docker_support import Recorder, docker, execute, make_request, open_run, write_project

from mlproj.docker.images import build_project_image
from mlproj.envs.docker import DockerManager

pytestmark = pytest.mark.docker


def test_second_prepare_reuses_the_image_without_building(
    tmp_path: Path,
    docker_daemon: str,
    project_name: str,
) -> None:
    project_dir = tmp_path / "proj"
    project = write_project(
        project_dir,
        name=project_name,
        image=docker_daemon,
        command="pwd; cat data.txt; ls",
        files={"data.txt": "baked in\n", "src/train.py": "print('hi')\n"},
    )
    # The tracking store lives inside the project (the usual ./mlruns): it must not be baked
    # in, or every run would change the content hash and rebuild.
    tracking_uri = (project_dir / "mlruns").as_uri()
    manager = DockerManager()

    first = Recorder()
    plan = manager.prepare(
        make_request(project, open_run(tracking_uri), recorder=first, build_image=True)
    )
    uri = first.tags["mlflow.docker.image.uri"]
    assert uri.startswith(f"{project_name}:")
    assert any(line.startswith("Building Docker image") for line in first.logs)
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["/mlflow/projects/code", "baked in"]
    assert "mlruns" not in result.stdout.split()
    assert not any(
        "target=/mlflow/projects/code" in arg for arg in plan.argv
    )  # copied, not mounted

    second = Recorder()
    started = time.perf_counter()
    manager.prepare(
        make_request(project, open_run(tracking_uri), recorder=second, build_image=True)
    )
    elapsed = time.perf_counter() - started
    assert second.tags["mlflow.docker.image.id"] == first.tags["mlflow.docker.image.id"]
    assert second.tags["mlflow.docker.image.uri"] == uri
    assert not any(line.startswith("Building") for line in second.logs), second.logs
    assert elapsed < 3.0, f"reusing the image took {elapsed:.2f} s"

    (project_dir / "data.txt").write_text("changed\n")
    third = Recorder()
    plan = manager.prepare(
        make_request(project, open_run(tracking_uri), recorder=third, build_image=True)
    )
    assert third.tags["mlflow.docker.image.uri"] != uri
    assert third.tags["mlflow.docker.image.id"] != first.tags["mlflow.docker.image.id"]
    assert execute(plan).stdout.splitlines()[1] == "changed"


def test_build_project_image_for_other_backends(
    tmp_path: Path, docker_daemon: str, unique_name: str, image_cleanup: list[str]
) -> None:
    repository = f"127.0.0.1:5999/team/{unique_name}"
    image_cleanup.append(repository)
    project = write_project(
        tmp_path / "proj", name=None, image=docker_daemon, command="true", files={"a.txt": "a"}
    )
    logs: list[str] = []
    image = build_project_image(
        project, repository=repository, base_image=docker_daemon, log=logs.append
    )
    assert image.uri.startswith(f"{repository}:")
    assert image.image_id.startswith("sha256:")
    workdir = docker("image", "inspect", "--format", "{{.Config.WorkingDir}}", image.uri)
    assert workdir.stdout.strip().rstrip("/") == "/mlflow/projects/code"
    again = build_project_image(
        project, repository=repository, base_image=docker_daemon, log=logs.append
    )
    assert again == image
    assert logs[-1].startswith("Reusing Docker image")


def test_project_without_name_uses_docker_project_repository(
    tmp_path: Path, docker_daemon: str, tracking_uri: str, image_cleanup: list[str]
) -> None:
    project = write_project(tmp_path / "proj", name=None, image=docker_daemon, command="cat marker")
    (project.directory / "marker").write_text(str(tmp_path))  # unique content, unique tag
    recorder = Recorder()
    plan = DockerManager().prepare(
        make_request(project, open_run(tracking_uri), recorder=recorder, build_image=True)
    )
    uri = recorder.tags["mlflow.docker.image.uri"]
    image_cleanup.append(uri)
    assert uri.startswith("docker-project:")
    assert execute(plan).stdout == str(tmp_path)
