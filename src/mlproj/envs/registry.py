"""Name -> manager table; the default manager for a project's spec."""

from __future__ import annotations

import importlib

from mlproj.envs.base import EnvironmentManager
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

# name -> "module:Class", imported only when chosen so unused managers cost nothing.
_MANAGERS: dict[str, str] = {
    "local": "mlproj.envs.local:LocalManager",
    "uv": "mlproj.envs.python.uv:UvManager",
    "virtualenv": "mlproj.envs.python.virtualenv:VirtualenvManager",
    "conda": "mlproj.envs.conda:CondaManager",
    "docker": "mlproj.envs.docker:DockerManager",
}
# Names a user may pass as env_manager; docker is chosen by the project's docker_env only.
_USER_CHOICES = ("local", "uv", "virtualenv", "conda")


def manager_names() -> list[str]:
    return list(_MANAGERS)


def _invalid(name: str) -> ExecutionException:
    valid = ", ".join(repr(n) for n in _USER_CHOICES)
    return ExecutionException(f"Invalid value for env_manager: {name!r}. Must be one of {valid}")


def get_manager(name: str) -> EnvironmentManager:
    try:
        target = _MANAGERS[name]
    except KeyError:
        raise _invalid(name) from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutionException(
            f"The {name!r} environment manager is not available in this installation: {exc}"
        ) from None
    manager: EnvironmentManager = getattr(module, class_name)()
    return manager


def default_manager_name(project: Project) -> str:
    """python_env -> uv; conda_env -> conda if installed, else uv; docker -> docker;
    nothing declared -> local."""
    if project.env_type == "docker":
        return "docker"
    if project.env_type == "python_env":
        return "uv"
    if project.env_type == "conda_env":
        from mlproj.envs.conda import find_conda

        return "conda" if find_conda() is not None else "uv"
    return "local"


def choose_manager(project: Project, env_manager: str | None) -> EnvironmentManager:
    """The manager for this run: docker projects always use docker; else the user's choice or
    the project's default. Invalid names and combinations raise ExecutionException."""
    docker_ok = env_manager == "docker" and project.env_type == "docker"
    if env_manager is not None and env_manager not in _USER_CHOICES and not docker_ok:
        raise _invalid(env_manager)
    if project.env_type == "docker":
        return get_manager("docker")
    if env_manager is None:
        return get_manager(default_manager_name(project))
    if env_manager == "conda" and project.env_type != "conda_env":
        what = (
            "python_env project"
            if project.env_type == "python_env"
            else "This project declares no conda environment (no conda.yaml), so it"
        )
        raise ExecutionException(
            f"{what} cannot be executed using conda. Set --env-manager to 'uv', 'virtualenv' "
            "or 'local' to execute this project."
        )
    return get_manager(env_manager)
