"""Helpers for the docker tests: projects in tmp_path, runs opened with the real ``mlflow``
client, EnvRequests that record logs and tags, plan execution."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlproj.envs.base import EnvRequest, LaunchPlan
from mlproj.spec.project import Project, load_project

BUSYBOX_IMAGE = "mlproj-ci/busybox:1"
PYTHON_IMAGE = "mlproj-ci/python:3.11"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def write_project(
    folder: Path,
    *,
    image: str,
    command: str,
    name: str | None = "proj",
    parameters: Mapping[str, Any] | None = None,
    docker_env: Mapping[str, Any] | None = None,
    files: Mapping[str, str] | None = None,
) -> Project:
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "docker_env": {"image": image, **(docker_env or {})},
        "entry_points": {"main": {"command": command, "parameters": dict(parameters or {})}},
    }
    if name is not None:
        spec["name"] = name
    (folder / "MLproject").write_text(yaml.safe_dump(spec))
    for rel, text in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return load_project(folder)


@dataclass
class OpenRun:
    run_id: str
    experiment_id: str
    artifact_uri: str
    tracking_uri: str


def open_run(tracking_uri: str) -> OpenRun:
    """A RUNNING run created by the real mlflow client (as mlproj's core would have)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.create_run("0")
    return OpenRun(run.info.run_id, "0", run.info.artifact_uri, tracking_uri)


@dataclass
class Recorder:
    logs: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def log(self, line: str) -> None:
        self.logs.append(line)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)


def make_request(
    project: Project,
    run: OpenRun,
    *,
    command: str | None = None,
    recorder: Recorder | None = None,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> EnvRequest:
    recorder = recorder or Recorder()
    kwargs.setdefault("docker_args", {"network": "none"})
    return EnvRequest(
        project=project,
        command=command if command is not None else project.entry_points["main"].command,
        env=dict(env if env is not None else os.environ),
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        tracking_uri=run.tracking_uri,
        artifact_uri=run.artifact_uri,
        log=recorder.log,
        set_tags=recorder.set_tags,
        **kwargs,
    )


def execute(plan: LaunchPlan, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        plan.argv,
        env=plan.env,
        cwd=plan.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
