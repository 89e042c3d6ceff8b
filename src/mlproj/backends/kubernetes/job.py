"""Turn a Job template plus one run into the Job manifest that is created (pure functions)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from mlproj.docker.variables import container_variables
from mlproj.errors import ExecutionException
from mlproj.spec.project import DockerEnv

RUN_ID_LABEL = "mlproj-run-id"
_MAX_NAME = 63  # DNS-1123 label, the limit for Job names (pods add a suffix)
# Characters that only mean something to a shell; a command with none of them runs without one.
_SHELL_CHARS = re.compile(r"[;&|<>()$`*?~{}\[\]!#\n]")


def job_name(project_name: str, run_id: str) -> str:
    """``<project>-<run id prefix>``: a valid Job name that leads back to the run."""
    slug = re.sub(r"[^a-z0-9-]+", "-", project_name.lower()).strip("-") or "mlproj"
    suffix = run_id.lower()[:12]
    slug = slug[: _MAX_NAME - len(suffix) - 1].rstrip("-")
    return f"{slug}-{suffix}"


def container_name(project_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", project_name.lower()).strip("-") or "mlproj"
    return slug[:_MAX_NAME].rstrip("-")


def container_command(command: str) -> list[str]:
    """The container's argv for an entry-point command.

    The command was rendered for a shell (parameters are shell-quoted). Without shell syntax it
    is split into plain arguments, so images without a shell work and quotes are not passed on
    literally (MLflow's wart). With shell syntax (``;``, ``|``, ``$VAR``, globs...) it runs under
    ``/bin/sh -c`` exactly as written, like a local run.
    """
    try:
        tokens = shlex.split(command)
    except ValueError as exc:
        raise ExecutionException(f"Entry-point command cannot be parsed: {exc}: {command}") from exc
    if not tokens:
        raise ExecutionException("Entry-point command is empty")
    if _SHELL_CHARS.search(command):
        return ["/bin/sh", "-c", command]
    return tokens


def job_env(
    *,
    run_id: str,
    tracking_uri: str,
    experiment_id: str,
    docker_env: DockerEnv,
    host_env: Mapping[str, str],
) -> list[dict[str, str]]:
    """MLflow's run variables, then the project's docker_env ``environment`` items.

    ``KUBE_MLFLOW_TRACKING_URI`` on the host replaces the tracking URI the pod gets, since the
    host's URI (a local folder, ``localhost``) is often unreachable from the cluster.
    """
    env: dict[str, str] = {
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_TRACKING_URI": host_env.get("KUBE_MLFLOW_TRACKING_URI") or tracking_uri,
        "MLFLOW_EXPERIMENT_ID": experiment_id,
    }
    env.update(container_variables(docker_env.environment, host_env))
    return [{"name": k, "value": v} for k, v in env.items()]


def job_volumes(volumes: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """docker_env ``volumes`` (``src:dst[:ro|rw]``) as pod volumes and container mounts.

    An absolute ``src`` is a hostPath on the node; any other ``src`` is a named volume and maps to
    the PersistentVolumeClaim of that name.
    """
    pod_volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, spec in enumerate(volumes):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            raise ExecutionException(
                f"docker_env.volumes: {spec!r} must look like 'SOURCE:/container/path[:ro]'"
            )
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ExecutionException(
                f"docker_env.volumes: {spec!r}: mode {mode!r} is not supported (use ro or rw)"
            )
        name = f"mlproj-volume-{index}"
        if source.startswith("/"):
            pod_volumes.append({"name": name, "hostPath": {"path": source}})
        else:
            pod_volumes.append({"name": name, "persistentVolumeClaim": {"claimName": source}})
        mounts.append({"name": name, "mountPath": target, "readOnly": mode == "ro"})
    return pod_volumes, mounts


def render_job(
    template: dict[str, Any],
    *,
    name: str,
    container: str,
    image: str,
    command: list[str],
    env: list[dict[str, str]],
    volumes: Sequence[str] = (),
    run_id: str,
    timeout: int | None = None,
) -> dict[str, Any]:
    """Fill ``template`` (changed in place and returned) for one run.

    Template env entries come first; mlproj's replace any template entry of the same name.
    """
    metadata = template["metadata"]
    metadata["name"] = name
    _label(metadata, run_id)
    pod_template = template["spec"]["template"]
    pod_template["metadata"] = pod_template.get("metadata") or {}
    _label(pod_template["metadata"], run_id)
    pod_spec = pod_template["spec"]
    first = pod_spec["containers"][0]
    first["name"] = container
    first["image"] = image
    first["command"] = command
    first.pop("args", None)  # the command already carries the arguments
    ours = {e["name"] for e in env}
    kept = [
        e for e in first.get("env") or [] if not (isinstance(e, dict) and e.get("name") in ours)
    ]
    first["env"] = kept + env
    pod_volumes, mounts = job_volumes(volumes)
    if pod_volumes:
        pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *pod_volumes]
        first["volumeMounts"] = [*(first.get("volumeMounts") or []), *mounts]
    pod_spec.setdefault("restartPolicy", "Never")
    if timeout is not None:  # Kubernetes stops the Job and marks it Failed (DeadlineExceeded)
        template["spec"]["activeDeadlineSeconds"] = timeout
    return template


def _label(metadata: dict[str, Any], run_id: str) -> None:
    """Add the run-id label, also when the template writes ``labels:`` with no value."""
    metadata["labels"] = {**(metadata.get("labels") or {}), RUN_ID_LABEL: run_id}
