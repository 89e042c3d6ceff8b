"""The ``local`` manager: run in the caller's own environment."""

from __future__ import annotations

from typing import ClassVar

from mlproj.envs.base import EnvironmentManager, EnvRequest, LaunchPlan


class LocalManager(EnvironmentManager):
    name: ClassVar[str] = "local"
    tag_value: ClassVar[str | None] = None

    def prepare(self, request: EnvRequest) -> LaunchPlan:
        return LaunchPlan(
            argv=["bash", "-c", request.command],
            env=dict(request.env),
            cwd=request.project.directory,
        )
