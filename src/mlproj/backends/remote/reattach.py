"""Find the handle of a run again from its tags alone, through the backend that submitted it.

Used by whatever acts on a run submitted earlier, maybe by another process: ``mlproj runs
cancel`` (stop the Job / Databricks run / plugin job), ``runs reap`` (settle a remote run whose
watcher died), the detached watcher itself. The backend is the one named in the run's tags
(``mlproj.backend``, else ``mlflow.project.backend``), looked up in the registry, so plugins
take part exactly as built-ins do. Runs supervised on this machine by the local backend are
not handled here (see :mod:`mlproj.local_run.identity`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlproj.backends.registry import backend_name_of, get_backend
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tags import TAG_ERROR, TAG_OUTCOME, TAG_PID
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run


def is_local(run: Run) -> bool:
    """A run the local backend supervises (its supervisor process is in the tags)."""
    return TAG_PID in run.tags or backend_name_of(run) == "local"


def reattach(run: Run, store: TrackingStore) -> SubmittedRun | None:
    """A live handle on a remote run; None for a local run or a backend that cannot re-attach.

    Raises ExecutionException when the backend is unknown here (a plugin not installed) or
    the run's cluster cannot be reached.
    """
    if is_local(run):
        return None
    return get_backend(backend_name_of(run)).reattach(run, store)


def record_outcome(store: TrackingStore, run_id: str, status: str) -> str:
    """Make the stored status the handle's terminal ``status`` (how the command ended), unless
    mlproj already recorded the run's end; returns the status now stored.

    A terminal status without mlproj's mark was written by someone else - typically the
    project's own MLflow client, whose exit hook writes FINISHED even after a crash."""
    if status not in TERMINAL_STATUSES:
        return status
    current = store.get_run(run_id)
    if current.info.status in TERMINAL_STATUSES and TAG_OUTCOME in current.tags:
        return current.info.status
    if current.info.status != status:
        store.set_tags(run_id, {TAG_OUTCOME: status})
        store.set_terminated(run_id, status)
    return status


def wait_for_outcome(store: TrackingStore, handle: SubmittedRun) -> bool:
    """Wait for a remote run, make sure its stored status is how it ended, and say whether it
    FINISHED: ``wait()``, ``get_status()`` and the store agree afterwards, whatever the
    backend's handle recorded itself."""
    finished = handle.wait()
    outcome = record_outcome(store, handle.run_id, handle.get_status())
    return outcome == RunStatus.FINISHED if outcome in TERMINAL_STATUSES else finished


@dataclass(frozen=True)
class Settled:
    """What ``settle`` found: the run's status now; whether it started a new watcher; whether
    the run's job could be looked at at all."""

    status: str
    new_watcher: bool = False
    found: bool = True


def settle(run: Run, store: TrackingStore) -> Settled | None:
    """Read a remote run's status from its cluster once and record it when it has ended.

    None for a local run. A run still going whose recorded watcher is gone (killed, machine
    rebooted) gets a new detached watcher. A run with no job recorded whose submitting process
    is gone never got its job: it is marked FAILED (only for backends that find their runs
    again; for others nothing is known). Raises ExecutionException when the cluster cannot be
    reached or the backend is not installed here."""
    from mlproj.backends.base import Backend
    from mlproj.backends.remote.watcher import spawn_watcher, watcher_alive, watcher_tags

    if is_local(run):
        return None
    backend = get_backend(backend_name_of(run))
    handle = backend.reattach(run, store)
    watcher = watcher_alive(run)
    if handle is None:
        finds_runs = type(backend).reattach is not Backend.reattach
        if finds_runs and watcher is False:
            reason = (
                "the submission never finished: no job was recorded and the process that "
                "submitted it is gone"
            )
            store.set_tags(run.run_id, {TAG_ERROR: reason, TAG_OUTCOME: RunStatus.FAILED})
            store.set_terminated(run.run_id, RunStatus.FAILED)
            return Settled(RunStatus.FAILED)
        return Settled(run.info.status, found=False)
    status = handle.get_status()
    if status in TERMINAL_STATUSES:
        return Settled(record_outcome(store, run.run_id, status))
    if watcher is False:
        pid = spawn_watcher(store.tracking_uri, run.run_id, backend.name)
        store.set_tags(run.run_id, watcher_tags(pid))
        return Settled(status, new_watcher=True)
    return Settled(status)
