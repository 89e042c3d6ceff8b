"""The MLproject file: loading, validation and entry points.

(Types fixed by the lead; loading is implemented in this module.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ParamType = Literal["string", "float", "int", "path", "uri", "bool"]
EnvType = Literal["python_env", "conda_env", "docker", "none"]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParamType = "string"
    default: Any = None  # None means required
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    help: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)  # declaration order


@dataclass(frozen=True)
class DockerEnv:
    image: str
    volumes: tuple[str, ...] = ()
    # "NAME" copies the host value; ("NAME", "value") sets it.
    environment: tuple[str | tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Project:
    directory: Path  # absolute
    spec_path: Path | None  # the MLproject file, None when the folder has none
    name: str | None
    entry_points: Mapping[str, EntryPoint]
    env_type: EnvType
    env_file: Path | None  # absolute path of python_env / conda yaml, when there is one
    docker_env: DockerEnv | None = None

    def get_entry_point(self, name: str) -> EntryPoint:
        raise NotImplementedError


def load_project(path: str | Path) -> Project:
    raise NotImplementedError
