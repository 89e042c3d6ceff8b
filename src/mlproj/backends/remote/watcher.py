"""The process that waits for a remote run and records its end.

A remote run (Kubernetes Job, Databricks run, a plugin's job) keeps going after the submitting
process exits. A synchronous ``mlproj run`` waits for it itself; an asynchronous submission
starts a detached watcher - ``python -m mlproj.backends.remote.watcher TRACKING_URI RUN_ID`` in
its own session - which re-attaches through the backend named in the run's tags, waits, and
records the final status and log, so a run is never left RUNNING because nobody waited.
Either way the waiting process is recorded in the run's tags (``mlproj.watcher.*``): when it
is gone and the run is still RUNNING, ``mlproj runs reap`` settles the run or starts a new
watcher. Watchers are started with ``posix_spawn`` rather than ``Popen`` so no handle object
outlives the caller's interest in it; :func:`reap` collects an exit status when the caller
waits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys

from mlproj.home import home_subdir
from mlproj.local_run.identity import boot_id, process_start_ticks
from mlproj.tags import TAG_WATCHER_BOOT_ID, TAG_WATCHER_HOST, TAG_WATCHER_PID, TAG_WATCHER_START
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

WATCHER_MODULE = "mlproj.backends.remote.watcher"


def spawn_watcher(tracking_uri: str, run_id: str, backend: str) -> int:
    """Start a detached watcher of ``run_id``; return its pid."""
    log_path = home_subdir("watchers") / f"{backend}-{run_id}.log"
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", WATCHER_MODULE, tracking_uri, run_id],
        dict(os.environ),
        file_actions=file_actions,
        setsid=True,
    )


def start_watching(
    store: TrackingStore, run_id: str, *, synchronous: bool, backend: str
) -> int | None:
    """Record who waits for a just-submitted run: this process when the caller waits
    (synchronous), else a new detached watcher, whose pid is returned."""
    pid = None if synchronous else spawn_watcher(store.tracking_uri, run_id, backend)
    store.set_tags(run_id, watcher_tags(pid))
    return pid


def watcher_tags(pid: int | None = None) -> dict[str, str]:
    """Tags naming ``pid`` (default: this process) as the run's watcher, on this host."""
    pid = os.getpid() if pid is None else pid
    return {
        TAG_WATCHER_HOST: socket.gethostname(),
        TAG_WATCHER_BOOT_ID: boot_id(),
        TAG_WATCHER_PID: str(pid),
        TAG_WATCHER_START: process_start_ticks(pid) or "",
    }


def watcher_alive(run: Run) -> bool | None:
    """Whether the run's recorded watcher still runs; None when this host cannot tell (no
    watcher recorded, or one on another machine)."""
    tags = run.tags
    if not tags.get(TAG_WATCHER_PID) or tags.get(TAG_WATCHER_HOST) != socket.gethostname():
        return None
    if tags.get(TAG_WATCHER_BOOT_ID, "") != boot_id():
        return False  # the machine rebooted since
    try:
        pid = int(tags[TAG_WATCHER_PID])
    except ValueError:
        return None
    started = process_start_ticks(pid)
    return started is not None and started == tags.get(TAG_WATCHER_START)


def reap(pid: int | None) -> None:
    """Collect the watcher's exit status if it has ended (no zombie left behind)."""
    if pid is None:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str]) -> int:
    """Re-attach to the run through its backend and wait for it: 0 FINISHED, 1 not, 2 a user
    error (cannot re-attach), 3 anything else (said in one line in the watcher's log)."""
    from mlproj.backends.remote.reattach import reattach
    from mlproj.errors import ExecutionException
    from mlproj.tracking import get_store

    tracking_uri, run_id = argv
    try:
        store = get_store(tracking_uri)
        handle = reattach(store.get_run(run_id), store)
        if handle is None:
            raise ExecutionException(f"Run {run_id}: its backend cannot re-attach to it")
        return 0 if handle.wait() else 1
    except ExecutionException as exc:
        print(f"mlproj: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a watcher reports any failure in one line
        print(f"mlproj: watcher stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
