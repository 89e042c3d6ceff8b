"""Environment managers and how one is chosen for a project."""

from __future__ import annotations

from mlproj.envs.base import EnvironmentManager, EnvRequest, LaunchPlan
from mlproj.envs.registry import choose_manager, get_manager, manager_names

__all__ = [
    "EnvRequest",
    "EnvironmentManager",
    "LaunchPlan",
    "choose_manager",
    "get_manager",
    "manager_names",
]
