"""The store for SQL (``sqlite:``, ``postgresql:``, ``mysql:``, ``mssql:``) and ``databricks`` URIs.

These schemas belong to MLflow (alembic migrations, Databricks auth), so mlproj hands them to the
``mlflow`` package's client instead of re-implementing them. ``mlflow`` is an optional extra,
imported only when such a URI is used.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlproj.errors import ExecutionException
from mlproj.redaction import redact_url
from mlproj.tags import MLFLOW_USER
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.common import local_folder, run_not_found
from mlproj.tracking.entities import Experiment, Metric, Run, RunInfo
from mlproj.tracking.rest_store import build_filter, tag_filter

PAGE_SIZE = 1000


def absolute_sqlite_uri(uri: str) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////abs/rel.db``: children may start in another folder."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith(prefix + "/"):
        return uri
    rest = uri[len(prefix) :]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:":
        return uri
    return f"{prefix}{Path(path).expanduser().absolute()}{sep}{query}"


def _import_client() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ExecutionException(
            "SQL and databricks tracking URIs need the mlflow package: "
            "pip install 'mlproj[mlflow]' (or use a file store such as ./mlruns, "
            "or an http(s):// MLflow tracking server)"
        ) from None
    return MlflowClient


@contextmanager
def _mlflow_errors(action: str) -> Iterator[None]:
    """MLflow's exceptions become one-line ExecutionExceptions naming what failed."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        first = str(exc.message).strip().splitlines()
        raise ExecutionException(
            f"{action}: {exc.error_code}: {first[0] if first else 'no details'}"
        ) from None
    except ImportError as exc:
        # SQLAlchemy loads the database driver only now (psycopg2, pymysql, ...).
        raise ExecutionException(
            f"{action}: the database driver {exc.name or ''!s} is not installed; "
            f"pip install it into this environment ({exc})"
        ) from None


class MlflowStore(TrackingStore):
    """Delegates every call to ``mlflow.tracking.MlflowClient`` for the given URI."""

    def __init__(self, uri: str) -> None:
        client_cls = _import_client()
        self.tracking_uri = absolute_sqlite_uri(uri)
        self._display = redact_url(self.tracking_uri, keep_user=True)
        with _mlflow_errors(f"Opening tracking store {self._display}"):
            self.client = client_cls(tracking_uri=self.tracking_uri)

    # -- experiments -------------------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_experiment(experiment_id)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise ExecutionException(
                f"Getting experiment {experiment_id} from {self._display}: {exc.message}"
            ) from None
        return _experiment(found) if found is not None else None

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with _mlflow_errors(f"Getting experiment {name!r} from {self._display}"):
            found = self.client.get_experiment_by_name(name)
        return _experiment(found) if found is not None else None

    def create_experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.create_experiment(name))
        except MlflowException as exc:
            found = self.get_experiment_by_name(name)
            if found is not None:  # created meanwhile by another client
                return found.experiment_id
            raise ExecutionException(
                f"Creating experiment {name!r} in {self._display}: {exc.message}"
            ) from None

    def list_experiments(self) -> list[Experiment]:
        out: list[Experiment] = []
        token: str | None = None
        with _mlflow_errors(f"Listing experiments of {self._display}"):
            while True:
                page = self.client.search_experiments(max_results=PAGE_SIZE, page_token=token)
                out.extend(_experiment(e) for e in page)
                token = page.token
                if not token:
                    return out

    # -- runs --------------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None = None,
    ) -> RunInfo:
        # MLflow's client takes the run's user_id from the mlflow.user tag.
        all_tags = dict(tags)
        if user_id:
            all_tags.setdefault(MLFLOW_USER, user_id)
        with _mlflow_errors(f"Creating a run in experiment {experiment_id} of {self._display}"):
            created = self.client.create_run(
                experiment_id, start_time=start_time, tags=all_tags, run_name=run_name or None
            )
        return _run(created).info

    def get_run(self, run_id: str) -> Run:
        from mlflow.exceptions import MlflowException

        try:
            return _run(self.client.get_run(run_id))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise run_not_found(run_id, self._display) from None
            raise ExecutionException(f"Getting run {run_id}: {exc.message}") from None

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
    ) -> None:
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import Param, RunTag

        with _mlflow_errors(f"Logging to run {run_id}"):
            # The client splits into batches within the store's limits itself.
            self.client.log_batch(
                run_id,
                metrics=[MlflowMetric(m.key, m.value, m.timestamp, m.step) for m in metrics],
                params=[Param(k, str(v)) for k, v in (params or {}).items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            )

    def reopen_run(self, run_id: str) -> None:
        with _mlflow_errors(f"Reopening run {run_id}"):
            self.client.update_run(run_id, status="RUNNING")

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        with _mlflow_errors(f"Setting status {status} on run {run_id}"):
            self.client.set_terminated(run_id, status=status, end_time=end_time)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        status: str | None = None,
        params: Mapping[str, str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        if not experiment_ids or max_results <= 0:
            return []
        return self._search(experiment_ids, build_filter(status=status, params=params), max_results)

    def find_runs_by_tag(
        self,
        experiment_ids: Sequence[str],
        key: str,
        value: str,
        *,
        status: str | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        if not experiment_ids or max_results <= 0:
            return []
        return self._search(experiment_ids, tag_filter(key, value, status), max_results)

    def _search(self, experiment_ids: Sequence[str], query: str, max_results: int) -> list[Run]:
        """Runs matching ``query``, newest first, paged by MLflow's client."""
        out: list[Run] = []
        token: str | None = None
        with _mlflow_errors(f"Searching runs in {self._display}"):
            while len(out) < max_results:
                page = self.client.search_runs(
                    list(experiment_ids),
                    filter_string=query,
                    max_results=min(PAGE_SIZE, max_results - len(out)),
                    order_by=["attributes.start_time DESC"],
                    page_token=token,
                )
                out.extend(_run(r) for r in page)
                token = page.token
                if not token:
                    break
        return out[:max_results]

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with _mlflow_errors(f"Reading metric {key!r} of run {run_id}"):
            history = self.client.get_metric_history(run_id, key)
        return [Metric(m.key, float(m.value), int(m.timestamp), int(m.step or 0)) for m in history]

    # -- artifacts ---------------------------------------------------------------------------
    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        with _mlflow_errors(f"Uploading {local_path} to run {run_id}"):
            self.client.log_artifact(run_id, str(local_path), artifact_path)

    def local_artifact_dir(self, run_id: str) -> Path | None:
        return local_folder(self.get_run(run_id).info.artifact_uri)

    def read_artifact(self, run: Run, path: str) -> bytes | None:
        """The bytes of one artifact file of ``run``, or None when it does not exist.

        Existence is asked of the artifact listing, so a failure to reach or read the artifact
        store (auth, network) is an error, never taken for a missing file."""
        parent = path.strip("/").rpartition("/")[0]
        action = f"Reading artifact {path} of run {run.run_id}"
        with _mlflow_errors(action), _artifact_store_errors(action):
            listed = self.client.list_artifacts(run.run_id, parent or None)
            if not any(f.path == path.strip("/") and not f.is_dir for f in listed):
                return None
            with tempfile.TemporaryDirectory(prefix="mlproj-artifact-") as tmp:
                local = self.client.download_artifacts(run.run_id, path, dst_path=tmp)
                return Path(local).read_bytes()


@contextmanager
def _artifact_store_errors(action: str) -> Iterator[None]:
    """Whatever the artifact store's library raises (OSError, botocore, google-auth...)
    becomes one line naming what failed."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (ExecutionException, MlflowException):
        raise
    except Exception as exc:  # noqa: BLE001 - the libraries behind MLflow raise anything
        first = str(exc).strip().splitlines()
        detail = f": {first[0]}" if first else ""
        raise ExecutionException(f"{action}: {type(exc).__name__}{detail}") from None


def _experiment(exp: Any) -> Experiment:
    return Experiment(
        experiment_id=str(exp.experiment_id),
        name=str(exp.name),
        artifact_location=str(exp.artifact_location or ""),
        lifecycle_stage=str(exp.lifecycle_stage),
        creation_time=int(exp.creation_time) if exp.creation_time is not None else None,
        tags=dict(exp.tags or {}),
    )


def _run(run: Any) -> Run:
    info = run.info
    return Run(
        info=RunInfo(
            run_id=str(info.run_id),
            experiment_id=str(info.experiment_id),
            run_name=str(info.run_name or ""),
            status=str(info.status),
            start_time=int(info.start_time or 0),
            end_time=int(info.end_time) if info.end_time is not None else None,
            artifact_uri=str(info.artifact_uri or ""),
            user_id=str(info.user_id or ""),
            lifecycle_stage=str(info.lifecycle_stage),
        ),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
    )
