"""Name -> manager table; the default manager for a project's spec."""

from __future__ import annotations

import importlib

from mlproj.envs.base import EnvironmentManager
from mlproj.errors import ExecutionException
from mlproj.spec import Project

# name -> "module:Class", imported only when chosen so unused managers cost nothing.
_MANAGERS: dict[str, str] = {
    "local": "mlproj.envs.local:LocalManager",
}


def manager_names() -> list[str]:
    return list(_MANAGERS)


def get_manager(name: str) -> EnvironmentManager:
    try:
        target = _MANAGERS[name]
    except KeyError:
        valid = ", ".join(repr(n) for n in _MANAGERS if n != "docker")
        raise ExecutionException(
            f"Invalid value for env_manager: {name!r}. Must be one of {valid}"
        ) from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    manager: EnvironmentManager = cls()
    return manager


def choose_manager(project: Project, env_manager: str | None) -> EnvironmentManager:
    """The manager for this run: docker projects always use docker; else the user's choice or
    the project's default."""
    if env_manager is not None and env_manager not in _MANAGERS:
        get_manager(env_manager)  # raises the listing error
    return get_manager(env_manager or "local")
