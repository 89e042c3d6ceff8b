"""docker_env ``environment``: the variables a project's container gets from the host.

One rule for every place that starts the project's image (the docker environment, the
Kubernetes backend): ``NAME`` copies the host's value and must be set on the host, checked
before anything is pulled, built or pushed; ``[NAME, value]`` sets the value given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlproj.errors import ExecutionException

# As parsed from the MLproject (mlproj.spec.project.DockerEnv.environment).
EnvironmentItems = Sequence[str | tuple[str, str]]


def missing_host_variables(items: EnvironmentItems, host_env: Mapping[str, str]) -> list[str]:
    """The names ``items`` copies from the host that ``host_env`` does not have."""
    return [item for item in items if isinstance(item, str) and item not in host_env]


def check_host_variables(
    items: EnvironmentItems, host_env: Mapping[str, str], where: str = "MLproject"
) -> None:
    """A one-line error naming every copied variable the host lacks (``where``: the MLproject)."""
    missing = missing_host_variables(items, host_env)
    if not missing:
        return
    names, (it, each) = ", ".join(missing), ("it", "it") if len(missing) == 1 else ("them", "each")
    verb = "is" if len(missing) == 1 else "are"
    raise ExecutionException(
        f"{where}: docker_env.environment: {names} {verb} not set on this machine; export {it} "
        f'before running, or give {each} a value in the MLproject as ["{missing[0]}", "value"]'
    )


def container_variables(
    items: EnvironmentItems, host_env: Mapping[str, str], where: str = "MLproject"
) -> dict[str, str]:
    """The container's variables from ``items``, host values taken from ``host_env``."""
    check_host_variables(items, host_env, where)
    env: dict[str, str] = {}
    for item in items:
        if isinstance(item, str):
            env[item] = host_env[item]
        else:
            name, value = item
            env[name] = str(value)
    return env
