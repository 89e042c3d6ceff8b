"""Pieces the cache commands (``mlproj envs``, ``mlproj sources``) share."""

from __future__ import annotations

import click

from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import RunInfo

#: ``--size/--no-size`` of the ``list`` commands: folder sizes cost a walk of every file.
size_option = click.option(
    "--size/--no-size", "show_size", default=True, help="Compute folder sizes."
)


def human_size(num: float) -> str:
    """A byte count as ``512 B``, ``1.5 KB`` ... ``3.2 GB`` (GB is the largest unit)."""
    for unit in ("B", "KB", "MB", "GB"):
        if num < 1024 or unit == "GB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return f"{num:.1f} GB"


def run_infos(
    store: TrackingStore, experiment_ids: list[str], *, status: str | None, max_results: int
) -> list[RunInfo]:
    """Run records without params/metrics/tags, from the cheapest source the store offers."""
    # Optional store method, same arguments as search_runs (FileStore: one file read per run).
    fast = getattr(store, "search_run_infos", None)
    if callable(fast):
        infos: list[RunInfo] = fast(experiment_ids, status=status, max_results=max_results)
        return infos
    found = store.search_runs(experiment_ids, status=status, max_results=max_results)
    return [r.info for r in found]


def full_run_id(tracking_uri: str | None, text: str) -> str:
    """The full id of the run ``text`` (a run id or a unique prefix of one) names in the store
    ``tracking_uri`` names; a one-line ExecutionException when none or several match."""
    from mlproj.tracking import get_store
    from mlproj.tracking.run_ids import resolve_run_id

    return resolve_run_id(get_store(tracking_uri), text)
