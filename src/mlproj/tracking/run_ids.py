"""Short run ids: a unique prefix of a run id stands for the run, as a short SHA does in Git.

:func:`resolve_run_id` is what every command that reads a run id calls (``runs show``, ``logs``,
``cancel``, ``--resume``...).

How candidates are found, per store:

- file store: the run folders themselves (a directory listing per experiment; no file is read
  but the matches' ``meta.yaml``), so it stays fast on stores with many thousands of runs;
- a store with its own lookup (:meth:`TrackingStore.run_ids_with_prefix`: the SQLite store's
  primary-key index) answers directly;
- MLflow tracking servers and other SQL stores: MLflow's search API cannot filter run ids by prefix
  (``attributes.run_id`` accepts only ``=`` and ``IN``), so the newest :data:`RECENT_RUNS`
  runs of the active experiments are searched; an older run needs its full id, and the error
  says so.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.common import run_not_found

#: MLflow run ids are uuid4 hex strings.
FULL_RUN_ID = re.compile(r"[0-9a-f]{32}")
_HEX = re.compile(r"[0-9a-f]+")
#: How many of the newest runs a prefix is matched against on stores without folder listings.
RECENT_RUNS = 5000
#: Candidates named in an "ambiguous" error.
SHOWN_CANDIDATES = 8


def resolve_run_id(store: TrackingStore, text: str) -> str:
    """The full id of the run ``text`` names: a full id, or a unique prefix of one.

    Raise :class:`ExecutionException` (one line) when no run or several runs match."""
    wanted = text.strip().lower()
    if not wanted:
        raise ExecutionException("Empty run id: give a run id or a unique prefix of one")
    if FULL_RUN_ID.fullmatch(wanted) or not _HEX.fullmatch(wanted):
        # A full id, or an id of another form (some stores): the store says if it exists.
        return text.strip()
    found = _matching_ids(store, wanted)
    matches = sorted(found)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise _no_match(store, text.strip())
    names = _names(store, matches[:SHOWN_CANDIDATES], found)
    shown = ", ".join(
        f"{run_id} ({names[run_id]})" if names.get(run_id) else run_id
        for run_id in matches[:SHOWN_CANDIDATES]
    )
    more = len(matches) - SHOWN_CANDIDATES
    raise ExecutionException(
        f"Run id prefix {text.strip()!r} is ambiguous: {len(matches)} runs match: {shown}"
        + (f" and {more} more" if more > 0 else "")
        + "; give more characters"
    )


def _matching_ids(store: TrackingStore, prefix: str) -> dict[str, str | None]:
    """Matching run id -> its name, when the search already told it."""
    root = _file_store_root(store)
    if root is not None:
        return dict.fromkeys(_folder_matches(root, prefix))
    direct = store.run_ids_with_prefix(prefix)
    if direct is not None:
        return dict.fromkeys(direct)
    experiment_ids = [
        e.experiment_id for e in store.list_experiments() if e.lifecycle_stage == "active"
    ]
    runs = store.search_runs(experiment_ids, max_results=RECENT_RUNS)
    return {r.run_id: r.info.run_name for r in runs if r.run_id.startswith(prefix)}


def _file_store_root(store: TrackingStore) -> Path | None:
    from mlproj.tracking.file_store import FileStore

    return store.root if isinstance(store, FileStore) else None


def _folder_matches(root: Path, prefix: str) -> list[str]:
    """Run folders whose name starts with ``prefix``: <root>[/.trash]/<experiment>/<run>/."""
    found: set[str] = set()
    for parent in (root, root / ".trash"):
        for experiment in _subfolders(parent):
            for run in _subfolders(experiment):
                name = run.name
                if name.startswith(prefix) and (run / "meta.yaml").is_file():
                    found.add(name)
    return sorted(found)


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.name[0] != "." and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _names(
    store: TrackingStore, run_ids: list[str], known: dict[str, str | None]
) -> dict[str, str]:
    names: dict[str, str] = {}
    for run_id in run_ids:
        name = known.get(run_id)
        if name is None:
            try:
                name = store.get_run(run_id).info.run_name
            except ExecutionException:
                continue
        names[run_id] = name
    return names


def _no_match(store: TrackingStore, text: str) -> ExecutionException:
    base = run_not_found(text, store.tracking_uri)
    direct_lookup = type(store).run_ids_with_prefix is not TrackingStore.run_ids_with_prefix
    if _file_store_root(store) is not None or direct_lookup:
        return base  # every run was looked at
    return ExecutionException(
        f"{base} (a short id is matched against the newest {RECENT_RUNS} runs of the active "
        "experiments; give the full run id for an older run)"
    )
