"""Detached watcher processes for asynchronous remote runs.

A remote run (Kubernetes Job, Databricks run) keeps going after the submitting process exits.
A watcher - ``python -m <module> TRACKING_URI RUN_ID`` in its own session - waits for it and
records the final status and log, so a run is never left RUNNING because nobody waited.
It is started with ``posix_spawn`` rather than ``Popen`` so no handle object outlives the
caller's interest in it; :func:`reap` collects its exit status when the caller waits.
"""

from __future__ import annotations

import contextlib
import os
import sys

from mlproj.home import home_subdir


def spawn_watcher(module: str, tracking_uri: str, run_id: str) -> int:
    """Start ``python -m module TRACKING_URI RUN_ID`` detached; return its pid."""
    log_path = home_subdir("watchers") / f"{module.rsplit('.', 1)[-1]}-{run_id}.log"
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", module, tracking_uri, run_id],
        dict(os.environ),
        file_actions=file_actions,
        setsid=True,
    )


def reap(pid: int | None) -> None:
    """Collect the watcher's exit status if it has ended (no zombie left behind)."""
    if pid is None:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
