"""The ``kubernetes`` backend_config: its keys, the Job template, and the checks run before a
tracking run is opened. Every problem names the key (or template field) and what to do."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj.backends.config import TIMEOUT_KEY, parse_seconds, refuse_unknown_keys, whole_seconds
from mlproj.docker.variables import check_host_variables
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

TEMPLATE_KEY = "kube-job-template-path"
CONTEXT_KEY = "kube-context"
REPOSITORY_KEY = "repository-uri"
POLL_KEY = "poll-interval"
KNOWN_KEYS = (TEMPLATE_KEY, CONTEXT_KEY, REPOSITORY_KEY, POLL_KEY, TIMEOUT_KEY)

DEFAULT_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class KubernetesConfig:
    template_path: Path
    template: dict[str, Any]  # parsed Job manifest; copy before changing
    namespace: str
    repository: str
    context: str | None
    poll_interval: float
    timeout: int | None = None  # seconds; becomes the Job's activeDeadlineSeconds

    def job_template(self) -> dict[str, Any]:
        return copy.deepcopy(self.template)


def parse_config(
    backend_config: Mapping[str, Any] | None, project_dir: Path | None = None
) -> KubernetesConfig:
    """Check the backend config and load its Job template."""
    if not backend_config:
        raise ExecutionException(
            "The kubernetes backend needs a backend config: pass -c/--backend-config with a JSON "
            f"object or .json file holding {TEMPLATE_KEY!r} and {REPOSITORY_KEY!r} "
            f"(optional: {CONTEXT_KEY!r})"
        )
    refuse_unknown_keys(backend_config, KNOWN_KEYS, "kubernetes")
    template_value = backend_config.get(TEMPLATE_KEY)
    if not template_value or not isinstance(template_value, str):
        raise ExecutionException(
            f"backend_config: {TEMPLATE_KEY!r} must be set to the path of a Kubernetes Job "
            "template (YAML)"
        )
    repository = backend_config.get(REPOSITORY_KEY)
    if not repository or not isinstance(repository, str):
        raise ExecutionException(
            f"backend_config: {REPOSITORY_KEY!r} must be set to the image repository the project "
            "image is pushed to (e.g. registry.example.com/team/my-project)"
        )
    context = backend_config.get(CONTEXT_KEY)
    if context is not None and not isinstance(context, str):
        raise ExecutionException(
            f"backend_config: {CONTEXT_KEY!r} must be a string, got {context!r}"
        )
    poll = parse_seconds(backend_config, POLL_KEY, DEFAULT_POLL_SECONDS)
    timeout = parse_seconds(backend_config, TIMEOUT_KEY)
    template_path = _find_template(template_value, project_dir)
    template = load_template(template_path)
    namespace = template["metadata"]["namespace"]
    return KubernetesConfig(
        template_path=template_path,
        template=template,
        namespace=namespace,
        repository=repository,
        context=context or None,
        poll_interval=poll or DEFAULT_POLL_SECONDS,
        timeout=whole_seconds(timeout),
    )


def _find_template(value: str, project_dir: Path | None) -> Path:
    path = Path(value).expanduser()
    candidates = [path.absolute()]
    if not path.is_absolute() and project_dir is not None:
        candidates.append(project_dir / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise ExecutionException(
        f"backend_config: {TEMPLATE_KEY!r} = {value!r}: no such file (looked at {tried})"
    )


def load_template(path: Path) -> dict[str, Any]:
    """Parse a Job template and check the fields mlproj fills in are where it expects them."""
    import yaml

    try:
        template = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ExecutionException(f"Could not read Kubernetes Job template {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ExecutionException(
            f"Kubernetes Job template {path} is not valid YAML: {exc}"
        ) from exc
    where = f"Kubernetes Job template {path}"
    if not isinstance(template, dict):
        raise ExecutionException(f"{where}: expected a Job manifest (a YAML mapping)")
    kind = template.get("kind", "Job")
    if kind != "Job":
        raise ExecutionException(f"{where}: kind is {kind!r}; only batch/v1 Job is supported")
    metadata = template.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("namespace"):
        raise ExecutionException(
            f"{where}: metadata.namespace is missing; set the namespace the Job is created in"
        )
    containers = _dig(template, ("spec", "template", "spec", "containers"))
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise ExecutionException(
            f"{where}: spec.template.spec.containers must list at least one container; the "
            "first one runs the project (mlproj sets its name, image, command and env)"
        )
    env = containers[0].get("env")
    if env is not None and not isinstance(env, list):
        raise ExecutionException(f"{where}: spec.template.spec.containers[0].env must be a list")
    return template


def _dig(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def check_project(project: Project) -> None:
    """Kubernetes runs the project's docker image, so the project must declare one."""
    where = str(project.spec_path or project.directory)
    if project.docker_env is None:
        raise ExecutionException(
            f"{where}: the kubernetes backend runs projects in a Docker image; add a docker_env "
            "with an 'image' to the MLproject"
        )
    if not project.name:
        raise ExecutionException(
            f"{where}: 'name' must be set when running on kubernetes (it names the Job and its "
            "container)"
        )
    # A variable copied from the host must exist now, not after the image is built and pushed.
    check_host_variables(project.docker_env.environment, os.environ, where)


def kubeconfig_path() -> str | None:
    """``$KUBECONFIG`` as it is now (the client reads it only once, at import)."""
    return os.environ.get("KUBECONFIG") or None


def check_kube_context(context: str | None) -> None:
    """An explicitly named context must exist in the kubeconfig."""
    if context is None:
        return
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    try:
        list_contexts: Any = kube_config.list_kube_config_contexts  # untyped in the client
        contexts, _active = list_contexts(kubeconfig_path())
    except (ConfigException, OSError) as exc:
        raise ExecutionException(
            f"backend_config: {CONTEXT_KEY!r} = {context!r}, but no kubeconfig could be read "
            f"({type(exc).__name__}); check KUBECONFIG or ~/.kube/config"
        ) from exc
    names = [c.get("name") for c in contexts or []]
    if context not in names:
        known = ", ".join(repr(n) for n in names) or "none"
        raise ExecutionException(
            f"backend_config: {CONTEXT_KEY!r} = {context!r} is not in the kubeconfig "
            f"(contexts: {known})"
        )
