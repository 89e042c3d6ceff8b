"""The ``databricks`` backend: run the project as a one-time job run on a new cluster.

Steps of a submission, in order: tar the project reproducibly -> upload it to DBFS under its
sha256 (skipped when already there) -> upload the launcher the same way -> submit a
``spark_python_task`` on the configured new cluster, with the config's libraries plus mlflow ->
tag the run with the Databricks run URL and ids -> hand back a :class:`DatabricksSubmittedRun`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from mlproj.backends.archive import project_archive, sha256_hex
from mlproj.backends.base import Backend, SubmitRequest
from mlproj.backends.databricks.backend_config import (
    DatabricksConfig,
    check_project,
    check_tracking_uri,
    cluster_tracking_uri,
    import_sdk,
    parse_config,
)
from mlproj.backends.databricks.connection import workspace_client
from mlproj.backends.databricks.launcher import (
    ARCHIVE_TOP,
    LAUNCHER_SOURCE,
    describe,
    mlflow_run_args,
    spark_job_args,
    task_parameters,
)
from mlproj.backends.databricks.run import (
    POLL_TAG,
    RUN_ID_TAG,
    DatabricksSubmittedRun,
    reattach,
)
from mlproj.backends.remote.watcher import start_watching
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

RUN_URL_TAG = "mlflow.databricks.runURL"
WEBAPP_URL_TAG = "mlflow.databricks.webappURL"
JOB_ID_TAG = "mlflow.databricks.shellJobID"


def dbfs_code_dir(experiment_id: str) -> str:
    return f"/mlflow-experiments/{experiment_id}/projects-code"


class DatabricksBackend(Backend[DatabricksConfig]):
    name: ClassVar[str] = "databricks"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> DatabricksConfig:
        return parse_config(raw)

    def validate(self, project: Project, config: DatabricksConfig) -> None:
        check_project(project)
        import_sdk()

    def validate_tracking_uri(self, tracking_uri: str) -> None:
        """The tracking URI must be reachable from the cluster. Call before opening the run:
        ``validate`` cannot see a URI given with ``--tracking-uri``, so it does not guess from
        the environment (``submit`` checks again in any case)."""
        check_tracking_uri(tracking_uri)

    def reattach(self, run: Run, store: TrackingStore) -> DatabricksSubmittedRun | None:
        return reattach(run, store)

    def submit(self, request: SubmitRequest[DatabricksConfig]) -> DatabricksSubmittedRun:
        config = request.backend_config
        check_tracking_uri(request.tracking_uri)
        check_project(request.project)
        client = workspace_client(request.tracking_uri)
        store, run_id = request.store, request.run_id

        code_dir = dbfs_code_dir(request.experiment_id)
        archive = project_archive(request.project.directory, ARCHIVE_TOP)
        archive_path = f"{code_dir}/{sha256_hex(archive)}.tar.gz"
        upload_once(client, archive_path, archive, log=request.log)
        launcher = LAUNCHER_SOURCE.encode()
        launcher_path = f"{code_dir}/mlproj-launcher-{sha256_hex(launcher)[:16]}.py"
        upload_once(client, launcher_path, launcher, log=request.log)

        spark_job = request.project.databricks_spark_job
        if spark_job is not None:
            command, extra_libraries = spark_job_args(
                spark_job, request.command, request.project.describe()
            )
            if spark_job.get("python_file") is not None and request.params.as_logged():
                request.log(
                    "Warning: databricks_spark_job.python_file is set, so the entry point's "
                    "parameters are not passed (its 'parameters' list is)"
                )
            config = replace(config, libraries=[*config.libraries, *extra_libraries])
        else:
            command = mlflow_run_args(
                entry_point=request.entry_point.name,
                run_id=run_id,
                params=request.params.as_logged(),
                env_manager=request.env_manager.name,
            )
        request.log(f"Submitting to Databricks: python {describe(command)}")
        databricks_run_id = submit_run(
            client,
            config,
            run_name=f"mlproj run of {request.fetched.source_name}",
            python_file=f"dbfs:{launcher_path}",
            parameters=task_parameters(
                archive_dbfs_path=archive_path,
                tracking_uri=cluster_tracking_uri(request.tracking_uri),
                experiment_id=request.experiment_id,
                run_id=run_id,
                command=command,
            ),
        )
        store.set_tags(run_id, run_tags(client, databricks_run_id, config))
        run = DatabricksSubmittedRun(
            run_id,
            databricks_run_id,
            client,
            store,
            poll_interval=config.poll_interval,
            log=request.log,
        )
        run.watcher_pid = start_watching(
            store, run_id, synchronous=request.synchronous, backend=self.name
        )
        return run


def upload_once(client: WorkspaceClient, path: str, data: bytes, *, log: Any = print) -> bool:
    """Upload ``data`` to DBFS ``path`` unless a file is there already (the name is its
    hash); True when uploaded."""
    from databricks.sdk.errors.base import DatabricksError
    from databricks.sdk.errors.platform import NotFound, ResourceAlreadyExists

    try:
        client.dbfs.get_status(path)
    except NotFound:
        pass
    except DatabricksError as exc:
        raise ExecutionException(f"Checking DBFS path {path} failed: {exc}") from exc
    else:
        log(f"dbfs:{path} is already uploaded")
        return False
    log(f"Uploading {len(data)} bytes to dbfs:{path}")
    try:
        client.dbfs.upload(path, io.BytesIO(data), overwrite=False)
    except ResourceAlreadyExists:
        return False  # uploaded concurrently by another run of the same code
    except DatabricksError as exc:
        raise ExecutionException(f"Uploading to DBFS path {path} failed: {exc}") from exc
    return True


def libraries_with_mlflow(libraries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The config's libraries, plus mlflow unless one of them already provides it."""
    for lib in libraries:
        pypi = lib.get("pypi")
        package = pypi.get("package", "") if isinstance(pypi, dict) else ""
        name = package.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower()
        if name in ("mlflow", "mlflow-skinny") or ("mlflow" in package and "git+" in package):
            return list(libraries)
    return [*libraries, {"pypi": {"package": "mlflow"}}]


def submit_run(
    client: WorkspaceClient,
    config: DatabricksConfig,
    *,
    run_name: str,
    python_file: str,
    parameters: list[str],
) -> int:
    from databricks.sdk.errors.base import DatabricksError
    from databricks.sdk.service.compute import ClusterSpec, Library
    from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask

    task = SubmitTask(
        task_key="mlproj",
        new_cluster=ClusterSpec.from_dict(config.new_cluster),
        spark_python_task=SparkPythonTask(python_file=python_file, parameters=parameters),
        libraries=[Library.from_dict(lib) for lib in libraries_with_mlflow(config.libraries)],
    )
    try:
        waiter = client.jobs.submit(run_name=run_name, tasks=[task], timeout_seconds=config.timeout)
    except DatabricksError as exc:
        raise ExecutionException(f"Submitting the Databricks run failed: {exc}") from exc
    run_id = waiter.response.run_id if waiter.response is not None else None
    if run_id is None:
        raise ExecutionException("Databricks accepted the run but returned no run_id")
    return int(run_id)


def run_tags(
    client: WorkspaceClient, databricks_run_id: int, config: DatabricksConfig
) -> dict[str, str]:
    """MLflow's Databricks tags: run page URL, workspace URL, run and job ids."""
    from databricks.sdk.errors.base import DatabricksError

    tags = {
        RUN_ID_TAG: str(databricks_run_id),
        WEBAPP_URL_TAG: str(client.config.host or ""),
        POLL_TAG: str(config.poll_interval),
    }
    try:
        run = client.jobs.get_run(databricks_run_id)
    except DatabricksError as exc:
        raise ExecutionException(
            f"Reading Databricks run {databricks_run_id} failed: {exc}"
        ) from exc
    if run.run_page_url:
        tags[RUN_URL_TAG] = run.run_page_url
    if run.job_id is not None:
        tags[JOB_ID_TAG] = str(run.job_id)
    return tags
