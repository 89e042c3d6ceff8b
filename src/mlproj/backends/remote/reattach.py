"""Find the handle of a remote run again from its tags alone.

Used by commands that act on a run submitted earlier, maybe by another process:
``mlproj runs cancel`` (stop the Job / Databricks run), ``runs reap`` (sync a finished remote
run whose watcher died). Local runs are not handled here (see :mod:`mlproj.local_run.identity`).
"""

from __future__ import annotations

from mlproj.submitted import SubmittedRun
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run


def remote_handle(store: TrackingStore, run: Run) -> SubmittedRun | None:
    """A live handle for a Kubernetes or Databricks run; None for any other run.

    Raises ExecutionException when the run is remote but its cluster cannot be reached.
    """
    from mlproj.backends.databricks.run import RUN_ID_TAG
    from mlproj.backends.kubernetes.run import JOB_TAG

    if run.tags.get(JOB_TAG):
        from mlproj.backends.kubernetes.run import reattach as reattach_kubernetes

        return reattach_kubernetes(store, run.run_id)
    if run.tags.get(RUN_ID_TAG):
        from mlproj.backends.databricks.run import reattach as reattach_databricks

        return reattach_databricks(store, run.run_id)
    return None
