"""The store interface: the few operations mlproj needs from any MLflow tracking backend."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.tracking.entities import (
    DEFAULT_EXPERIMENT_ID,
    Experiment,
    Metric,
    Run,
    RunInfo,
)


class TrackingStore(ABC):
    """One MLflow-compatible tracking backend (file store, REST server, SQL via mlflow)."""

    #: The absolute tracking URI, exactly as child processes must receive it.
    tracking_uri: str

    # -- experiments -------------------------------------------------------------------------
    @abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment | None: ...

    @abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    @abstractmethod
    def create_experiment(self, name: str) -> str:
        """Create an experiment and return its id; if it already exists, return that id."""

    @abstractmethod
    def list_experiments(self) -> list[Experiment]: ...

    # -- runs --------------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None = None,
    ) -> RunInfo:
        """Create a RUNNING run. A missing ``run_name`` gets a random ``adjective-noun-NNN``."""

    def create_run_with_params(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        params: Mapping[str, str],
    ) -> RunInfo | None:
        """:meth:`create_run` with ``params`` logged in the same write (one transaction, or
        written before the run's folder appears); None when this store cannot, and the
        caller logs them after :meth:`create_run`."""
        return None

    @abstractmethod
    def get_run(self, run_id: str) -> Run:
        """Return the run; raise ExecutionException naming the id when it does not exist."""

    @abstractmethod
    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
    ) -> None:
        """Log in one go. Setting tag ``mlflow.runName`` also renames the run."""

    @abstractmethod
    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        """Set a terminal status (FINISHED / FAILED / KILLED) and the end time (now by default)."""

    @abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        status: str | None = None,
        params: Mapping[str, str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        """Runs of the given experiments, newest first, optionally filtered."""

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    @abstractmethod
    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts (under ``artifact_path`` when given)."""

    def find_runs_by_tag(
        self,
        experiment_ids: Sequence[str],
        key: str,
        value: str,
        *,
        status: str | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        """Runs whose tag ``key`` is exactly ``value``, newest first (reuse and child lookups).

        This default reads every run; stores override it with a lookup their backend makes
        cheap (a search filter, one small file per run)."""
        found = self.search_runs(experiment_ids, status=status, max_results=10**9)
        return [r for r in found if r.tags.get(key) == value][:max_results]

    def reopen_run(self, run_id: str) -> None:
        """Make an ended run RUNNING again, without an end time (``sweep --resume``)."""
        raise ExecutionException(
            f"Tracking store {self.tracking_uri} cannot reopen run '{run_id}' to resume it"
        )

    def get_run_status(self, run_id: str) -> str:
        """The run's status alone; stores override it when that is cheaper than ``get_run``."""
        return self.get_run(run_id).info.status

    def run_ids_with_prefix(self, prefix: str) -> list[str] | None:
        """Ids of the runs whose id starts with ``prefix``, when the store can look them up
        directly (an index, a folder listing); None when it cannot."""
        return None

    def local_artifact_dir(self, run_id: str) -> Path | None:
        """The run's artifact folder when it is on this machine's disk, else None."""
        return None

    # -- conveniences shared by every store ---------------------------------------------------
    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(run_id, tags={key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self.log_batch(run_id, tags=tags)

    def resolve_experiment(
        self, experiment_name: str | None = None, experiment_id: str | int | None = None
    ) -> str:
        """The experiment a run goes into, creating a named one when missing.

        Order: explicit name or id, then ``MLFLOW_EXPERIMENT_NAME``, then ``MLFLOW_EXPERIMENT_ID``,
        then ``Default`` (``0``). Unlike MLflow, an id that does not exist is an error now,
        before any run is opened.
        """
        if experiment_name is not None and experiment_id is not None:
            raise ExecutionException("Specify only one of 'experiment_name' or 'experiment_id'.")
        if experiment_name is None and experiment_id is None:
            experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
            env_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or None
            if experiment_name is None:
                experiment_id = env_id
        if experiment_name is not None:
            found = self.get_experiment_by_name(experiment_name)
            if found is not None:
                return found.experiment_id
            return self.create_experiment(experiment_name)
        wanted = str(experiment_id) if experiment_id is not None else DEFAULT_EXPERIMENT_ID
        if self.get_experiment(wanted) is None:
            if wanted == DEFAULT_EXPERIMENT_ID:
                return self.create_experiment("Default")
            raise ExecutionException(
                f"Experiment with id '{wanted}' does not exist in tracking store "
                f"{self.tracking_uri}"
            )
        return wanted


class CreatesRunWithParams(TrackingStore):
    """A store that writes a new run and its params together (the local ones): both ways of
    creating a run go to :meth:`_create_run`."""

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None = None,
    ) -> RunInfo:
        return self._create_run(experiment_id, run_name, tags, user_id, start_time, {})

    def create_run_with_params(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        params: Mapping[str, str],
    ) -> RunInfo:
        return self._create_run(experiment_id, run_name, tags, user_id, None, params)

    @abstractmethod
    def _create_run(
        self,
        experiment_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None,
        params: Mapping[str, str],
    ) -> RunInfo:
        """Create the RUNNING run with ``params`` in one write."""
