"""``python -m mlproj.backends.remote.watch TRACKING_URI RUN_ID``: the detached watcher.

Started by :func:`mlproj.backends.remote.watcher.spawn_watcher`; re-attaches to the run through
the backend named in its tags and waits for it, so its end is recorded when nobody else waits.
Its own module, imported by nobody, so re-attaching and spawning watchers know no cycle.
"""

from __future__ import annotations

import sys


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
