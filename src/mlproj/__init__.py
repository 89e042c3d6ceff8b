"""mlproj: run MLflow Projects reproducibly and fast.

The public names are loaded lazily so ``import mlproj`` (and the CLI) stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ExecutionException",
    "LocalSubmittedRun",
    "SubmittedRun",
    "__version__",
    "load_project",
    "run",
]

_LAZY = {
    "run": ("mlproj.api", "run"),
    "SubmittedRun": ("mlproj.submitted", "SubmittedRun"),
    "LocalSubmittedRun": ("mlproj.local_run.handle", "LocalSubmittedRun"),
    "ExecutionException": ("mlproj.errors", "ExecutionException"),
    "load_project": ("mlproj.spec.project", "load_project"),
}

if TYPE_CHECKING:
    from mlproj.api import run
    from mlproj.errors import ExecutionException
    from mlproj.local_run.handle import LocalSubmittedRun
    from mlproj.spec.project import load_project
    from mlproj.submitted import SubmittedRun


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'mlproj' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
