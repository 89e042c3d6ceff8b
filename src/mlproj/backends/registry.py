"""Backend name -> Backend: the built-ins, then third-party plugins from entry points.

Built-ins are ``"module:Class"`` strings imported only when chosen, so the Kubernetes and
Databricks SDKs cost nothing unless those backends are used. Plugins register under the
entry-point group ``mlproj.backends``; the entry-point name is the backend name and the object
it points to is a :class:`Backend` subclass or a zero-argument factory returning a Backend.
Entry points are only listed (never imported) until a plugin is asked for by name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlproj.backends.base import Backend
from mlproj.errors import ExecutionException
from mlproj.tags import MLFLOW_BACKEND, TAG_BACKEND
from mlproj.tracking.entities import Run

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "mlproj.backends"

_BUILTINS: dict[str, str] = {
    "local": "mlproj.backends.local:LocalBackend",
    "kubernetes": "mlproj.backends.kubernetes.backend:KubernetesBackend",
    "databricks": "mlproj.backends.databricks.backend:DatabricksBackend",
    "slurm": "mlproj.backends.slurm.backend:SlurmBackend",
    "ray": "mlproj.backends.ray.backend:RayBackend",
}


def _plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed plugin entry points by name; the first one wins when names repeat."""
    # Imported here: listing installed distributions costs more than a whole no-op run.
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def backend_names() -> list[str]:
    """Built-in names first, then installed plugins (built-ins cannot be overridden)."""
    plugins = sorted(n for n in _plugin_entry_points() if n not in _BUILTINS)
    return [*_BUILTINS, *plugins]


def backend_name_of(run: Run) -> str:
    """The backend that submitted ``run``, from its tags (``local`` when none is recorded)."""
    return run.tags.get(TAG_BACKEND) or run.tags.get(MLFLOW_BACKEND) or "local"


def get_backend(name: str) -> Backend[Any]:
    """The backend called ``name``; ExecutionException listing the valid names otherwise."""
    target = _BUILTINS.get(name)
    if target is not None:
        module_name, class_name = target.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        return _instantiate(cls, f"built-in backend {name!r} ({target})")
    plugin = _plugin_entry_points().get(name)
    if plugin is None:
        available = ", ".join(repr(n) for n in backend_names())
        raise ExecutionException(
            f"Unknown backend {name!r}. Available backends: {available}. Third-party backends "
            f"register under the entry-point group {ENTRY_POINT_GROUP!r}."
        )
    where = f"plugin backend {name!r} (entry point {plugin.value!r})"
    try:
        loaded = plugin.load()
    except Exception as exc:  # any import error inside third-party code
        raise ExecutionException(f"Could not load {where}: {type(exc).__name__}: {exc}") from exc
    return _instantiate(loaded, where)


def _instantiate(obj: object, where: str) -> Backend[Any]:
    if isinstance(obj, Backend):
        return obj
    if not callable(obj):
        raise ExecutionException(
            f"{where} is neither a Backend subclass nor a factory returning a Backend"
        )
    try:
        backend = obj()
    except ExecutionException:
        raise
    except Exception as exc:  # third-party constructors can raise anything
        raise ExecutionException(f"Could not create {where}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(backend, Backend):
        raise ExecutionException(
            f"{where} returned {type(backend).__name__}, not a mlproj.backends.base.Backend"
        )
    return backend
