"""A Kubernetes API client from the kubeconfig (optionally a named context) or in-cluster config.

Each run gets its own ``ApiClient``; the global default configuration is never touched, so
runs against different contexts can coexist in one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlproj.backends.kubernetes.backend_config import kubeconfig_path
from mlproj.errors import ExecutionException

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def import_kubernetes() -> None:
    try:
        import kubernetes  # noqa: F401
    except ImportError as exc:
        raise ExecutionException(
            "The kubernetes backend needs the kubernetes package: pip install 'mlproj[kubernetes]'"
        ) from exc


def api_client(context: str | None) -> ApiClient:
    """The kubeconfig's ``context`` (or its current context); in-cluster config when no context
    was asked for and no kubeconfig can be loaded."""
    import_kubernetes()
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    # The client's loaders are untyped.
    from_kubeconfig: Any = config.new_client_from_config
    in_cluster: Any = config.load_incluster_config
    try:
        loaded: ApiClient = from_kubeconfig(config_file=kubeconfig_path(), context=context)
        return loaded
    except (ConfigException, OSError) as exc:
        if context is not None:
            raise ExecutionException(
                f"Could not load kube-context {context!r} from the kubeconfig: {exc}"
            ) from exc
        kubeconfig_error = exc
    configuration = client.Configuration()
    try:
        in_cluster(client_configuration=configuration)
    except ConfigException as exc:
        raise ExecutionException(
            "Could not load a Kubernetes configuration: no usable kubeconfig "
            f"({kubeconfig_error}) and not running inside a cluster ({exc}). Set KUBECONFIG or "
            "kube-context in the backend config."
        ) from exc
    return client.ApiClient(configuration)


def api_error_message(exc: Exception) -> str:
    """A one-line description of a kubernetes client error (status and reason, no headers)."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, str | bytes):
        import json

        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
    parts = [str(p) for p in (status, reason, message) if p]
    return " ".join(parts) if parts else f"{type(exc).__name__}: {exc}"
