"""The Databricks backend through the real databricks-sdk, against the REST stand-in (see
backends_databricks_standin.py for what it replaces). Its "cluster" runs the uploaded launcher,
which runs the project with the real ``mlflow run`` into a real MLflow server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from backends_databricks_standin import DatabricksStandin
from backends_servers import wait_for_status, wait_for_watcher

import mlproj
from mlproj.backends.databricks.backend import DatabricksBackend, libraries_with_mlflow, upload_once
from mlproj.backends.databricks.backend_config import check_tracking_uri, parse_config
from mlproj.backends.databricks.connection import workspace_client
from mlproj.backends.databricks.launcher import spark_job_args
from mlproj.backends.databricks.run import run_status
from mlproj.errors import ExecutionException
from mlproj.spec.project import load_project
from mlproj.tracking import get_store
from shared_servers import MlflowServer

CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}

TRAIN = """\
import sys
import time

alpha = float(sys.argv[1])
print(f"training with alpha={alpha}", flush=True)
if alpha < 0:
    sys.exit(4)
if alpha > 100:
    time.sleep(300)
import mlflow  # only where needed: importing it is slow on a busy machine

with mlflow.start_run():
    mlflow.log_metric("score", alpha * 2)
"""


def _project(tmp_path: Path, docker: bool = False) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    (project / "MLproject").write_text(
        "name: dbx-demo\n"
        + ("docker_env:\n  image: python:3.11\n" if docker else "")
        + "entry_points:\n"
        "  main:\n"
        "    parameters:\n"
        "      alpha: {type: float, default: 0.5}\n"
        "    command: python train.py {alpha}\n"
    )
    (project / "train.py").write_text(TRAIN)
    (project / "mlruns").mkdir()  # a local store folder is never shipped
    (project / "mlruns" / "junk").write_text("x")
    return project


def _config(**extra: object) -> dict[str, object]:
    return {
        "new_cluster": CLUSTER,
        "libraries": [{"pypi": {"package": "scikit-learn"}}],
        "poll-interval": 0.2,
        **extra,
    }


# -- checks before any run is opened ---------------------------------------------------------
def test_config_shapes_and_errors() -> None:
    nested = parse_config(_config())
    assert nested.new_cluster == CLUSTER
    assert nested.libraries == [{"pypi": {"package": "scikit-learn"}}]
    assert nested.poll_interval == 0.2
    flat = parse_config({**CLUSTER, "poll-interval": 1})
    assert flat.new_cluster == CLUSTER  # mlproj's own key is not sent to Databricks
    with pytest.raises(ExecutionException, match="needs a backend config"):
        parse_config({})
    with pytest.raises(ExecutionException, match="'existing_cluster_id' is not supported"):
        parse_config({"existing_cluster_id": "0101-abc"})
    with pytest.raises(ExecutionException, match="libraries must be a list"):
        parse_config({"new_cluster": CLUSTER, "libraries": "sklearn"})
    with pytest.raises(ExecutionException, match="'poll-interval' must be a positive"):
        parse_config({**CLUSTER, "poll-interval": -1})
    timed = parse_config({**CLUSTER, "timeout": 59.5})
    assert timed.timeout == 60
    assert timed.new_cluster == CLUSTER


def test_tracking_uri_must_reach_the_cluster() -> None:
    for ok in ("databricks", "databricks://prof", "http://mlflow:5000", "https://x"):
        check_tracking_uri(ok)
    for bad in ("file:///tmp/mlruns", "sqlite:///x.db"):
        with pytest.raises(ExecutionException, match="tracking URI must be 'databricks'"):
            check_tracking_uri(bad)


def test_mlflow_is_added_to_libraries_once() -> None:
    assert libraries_with_mlflow([]) == [{"pypi": {"package": "mlflow"}}]
    pinned = [{"pypi": {"package": "mlflow==2.9.0"}}]
    assert libraries_with_mlflow(pinned) == pinned
    git = [{"pypi": {"package": "git+https://github.com/me/mlflow"}}]
    assert libraries_with_mlflow(git) == git


def test_status_mapping() -> None:
    def state(life: str, result: str | None = None, message: str = "") -> object:
        from databricks.sdk.service.jobs import RunState

        return RunState.from_dict(
            {"life_cycle_state": life, "result_state": result, "state_message": message}
        )

    assert run_status(state("PENDING")) == ("SCHEDULED", None)
    assert run_status(state("QUEUED")) == ("SCHEDULED", None)
    assert run_status(state("RUNNING")) == ("RUNNING", None)
    assert run_status(state("TERMINATING")) == ("RUNNING", None)
    assert run_status(state("TERMINATED", "SUCCESS")) == ("FINISHED", None)
    assert run_status(state("TERMINATED", "CANCELED", "by u")) == ("KILLED", "by u")
    assert run_status(state("TERMINATED", "TIMEDOUT")) == ("FAILED", "TIMEDOUT")
    assert run_status(state("INTERNAL_ERROR", None, "boom")) == ("FAILED", "INTERNAL_ERROR: boom")


def test_docker_projects_and_bad_configs_are_refused_before_a_run_is_opened(
    tmp_path: Path, databricks: DatabricksStandin
) -> None:
    with pytest.raises(ExecutionException, match="docker_env projects cannot run on Databricks"):
        DatabricksBackend().validate(
            load_project(_project(tmp_path / "d", docker=True)), parse_config(_config())
        )
    project = _project(tmp_path)
    with pytest.raises(ExecutionException, match="needs a backend config"):
        mlproj.run(str(project), backend="databricks")
    with pytest.raises(ExecutionException, match="'existing_cluster_id' is not supported"):
        mlproj.run(str(project), backend="databricks", backend_config={"existing_cluster_id": "x"})
    assert get_store().search_runs(["0"]) == []
    assert databricks.requests == []


def test_local_tracking_store_is_refused_and_nothing_is_submitted(
    tmp_path: Path, databricks: DatabricksStandin
) -> None:
    with pytest.raises(ExecutionException, match="got 'file:"):
        DatabricksBackend().validate_tracking_uri(get_store().tracking_uri)
    # Through run(): the test's tracking URI is a local file store.
    with pytest.raises(ExecutionException, match="got 'file:"):
        mlproj.run(str(_project(tmp_path)), backend="databricks", backend_config=_config())
    # Refused before any run is opened.
    assert get_store().search_runs(["0"]) == []
    assert databricks.requests == []


# -- real runs on the stand-in -----------------------------------------------------------------
@pytest.fixture
def remote(
    mlflow_server: MlflowServer, databricks: DatabricksStandin, monkeypatch: pytest.MonkeyPatch
) -> MlflowServer:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return mlflow_server


def _download_log(server: MlflowServer, run_id: str, tmp_path: Path) -> str:
    from mlflow.tracking import MlflowClient

    local = MlflowClient(server.url).download_artifacts(run_id, "mlproj/output.log", str(tmp_path))
    return Path(local).read_text()


def test_run_uploads_once_submits_and_records_the_outcome(
    tmp_path: Path, databricks: DatabricksStandin, remote: MlflowServer
) -> None:
    project = _project(tmp_path)
    submitted = mlproj.run(
        str(project),
        parameters={"alpha": "1.5"},
        backend="databricks",
        backend_config=_config(timeout=600),
    )
    assert submitted.get_status() == "FINISHED"
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.params == {"alpha": "1.5"}
    assert run.metrics == {"score": 3.0}  # logged on the "cluster" into mlproj's run
    dbx_run_id = run.tags["mlflow.databricks.shellJobRunID"]
    assert run.tags["mlflow.databricks.runURL"].endswith(f"/run/{dbx_run_id}")
    assert run.tags["mlflow.databricks.webappURL"] == databricks.url
    assert run.tags["mlflow.databricks.shellJobID"] == str(int(dbx_run_id) + 1)
    assert run.tags["mlflow.project.backend"] == "databricks"
    assert "training with alpha=1.5" in _download_log(remote, submitted.run_id, tmp_path)

    (body,) = databricks.calls("POST", "/api/2.2/jobs/runs/submit")
    assert body["timeout_seconds"] == 600
    task = body["tasks"][0]
    assert task["new_cluster"] == CLUSTER
    assert task["libraries"] == [
        {"pypi": {"package": "scikit-learn"}},
        {"pypi": {"package": "mlflow"}},
    ]
    params = task["spark_python_task"]["parameters"]
    archive = params[0]
    assert archive.startswith("/dbfs/mlflow-experiments/0/projects-code/")
    assert params[1:4] == [remote.url, "0", submitted.run_id]
    assert params[4:] == [
        "-m", "mlflow", "run", "{project}", "-e", "main", "--run-id", submitted.run_id,
        "--env-manager", "local", "-P", "alpha=1.5",
    ]  # fmt: skip
    import tarfile

    with tarfile.open(databricks.local(archive)) as tar:
        names = tar.getnames()
    assert "mlproj-project/train.py" in names
    assert not any("mlruns" in n for n in names)
    assert len(databricks.calls("POST", "/api/2.0/dbfs/create")) == 2  # archive + launcher

    # Same code again: nothing is uploaded.
    client = workspace_client(remote.url)
    assert not upload_once(client, archive[len("/dbfs") :], b"other bytes", log=print)
    assert len(databricks.calls("POST", "/api/2.0/dbfs/create")) == 2


def test_failed_task_fails_the_run_with_the_reason(
    tmp_path: Path, databricks: DatabricksStandin, remote: MlflowServer
) -> None:
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed") as caught:
        mlproj.run(
            str(_project(tmp_path)),
            parameters={"alpha": "-1"},
            backend="databricks",
            backend_config=_config(),
        )
    run_id = caught.value.message.split("'")[1]
    run = get_store().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"] == "FAILED: Python task exited with code 1"
    assert "training with alpha=-1.0" in _download_log(remote, run_id, tmp_path)


def test_cancel_stops_the_databricks_run_and_marks_it_killed(
    tmp_path: Path, databricks: DatabricksStandin, remote: MlflowServer
) -> None:
    submitted = mlproj.run(
        str(_project(tmp_path)),
        parameters={"alpha": "1000"},
        backend="databricks",
        backend_config=_config(),
        synchronous=False,
    )
    store = get_store()
    deadline = time.monotonic() + 90
    while True:  # wait until the task is running on the "cluster"
        run = next(iter(databricks.runs.values()), None)
        log = run.output_path if run is not None else None
        if log is not None and log.exists() and "training with" in log.read_text():
            break
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.3)
    submitted.cancel()
    assert submitted.get_status() == "KILLED"
    assert store.get_run(submitted.run_id).info.status == "KILLED"
    assert len(databricks.calls("POST", "/api/2.2/jobs/runs/cancel")) == 1
    (run,) = databricks.runs.values()
    assert run.result_state == "CANCELED"
    assert run.process is not None and run.process.poll() is not None
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_spark_job_arguments() -> None:
    args, libs = spark_job_args(
        {"python_file": "job.py", "parameters": ["--n", 3], "python_libraries": ["pandas"]},
        "python ignored.py",
        "MLproject",
    )
    assert args == ["job.py", "--n", "3"]
    assert libs == [{"pypi": {"package": "pandas"}}]
    args, libs = spark_job_args({}, "python job.py --alpha 'a b'", "MLproject")
    assert (args, libs) == (["job.py", "--alpha", "a b"], [])
    with pytest.raises(ExecutionException, match="must be 'python FILE ...', got 'bash x.sh'"):
        spark_job_args({}, "bash x.sh", "MLproject")


def test_spark_job_project_runs_its_script_directly(
    tmp_path: Path, databricks: DatabricksStandin, remote: MlflowServer
) -> None:
    project = tmp_path / "spark"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: spark-demo\n"
        "databricks_spark_job:\n"
        "  python_file: job.py\n"
        "  parameters: [--rows, '10']\n"
        "  python_libraries: [pandas==2.2.3]\n"
        "entry_points:\n  main:\n    command: python job.py\n"
    )
    (project / "job.py").write_text(
        "import os, sys\nprint('spark job', sys.argv[1:], os.environ['MLFLOW_RUN_ID'])\n"
    )
    submitted = mlproj.run(
        str(project),
        backend="databricks",
        backend_config={**CLUSTER, "poll-interval": 0.2},
        synchronous=False,
    )
    # Asynchronous and never waited for here: the detached watcher records the end.
    store = get_store()
    wait_for_status(store, submitted.run_id, "FINISHED", timeout=90)
    (body,) = databricks.calls("POST", "/api/2.2/jobs/runs/submit")
    task = body["tasks"][0]
    assert task["spark_python_task"]["parameters"][4:] == ["job.py", "--rows", "10"]
    assert task["libraries"] == [
        {"pypi": {"package": "pandas==2.2.3"}},
        {"pypi": {"package": "mlflow"}},
    ]
    log = _download_log(remote, submitted.run_id, tmp_path)
    assert f"spark job ['--rows', '10'] {submitted.run_id}" in log
    assert store.get_run(submitted.run_id).tags["mlflow.project.backend"] == "databricks"
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def _spark_project(tmp_path: Path, script: str) -> Path:
    project = tmp_path / "spark"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: spark-demo\n"
        "databricks_spark_job:\n  python_file: job.py\n"
        "entry_points:\n  main:\n    command: python job.py\n"
    )
    (project / "job.py").write_text(script)
    return project


def test_a_failed_task_is_failed_whatever_its_mlflow_client_recorded(
    tmp_path: Path, databricks: DatabricksStandin, remote: MlflowServer
) -> None:
    # The script logs into mlproj's run, then crashes: MLflow's exit hook ends the run
    # FINISHED before the task fails.
    project = _spark_project(
        tmp_path, "import mlflow\nmlflow.log_param('seen', 'yes')\nraise SystemExit(3)\n"
    )
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed") as caught:
        mlproj.run(
            str(project), backend="databricks", backend_config={**CLUSTER, "poll-interval": 0.2}
        )
    run_id = caught.value.message.split("'")[1]
    run = get_store().get_run(run_id)
    assert run.params == {"seen": "yes"}
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"] == "FAILED: Python task exited with code 3"
    assert run.tags["mlflow.project.backend"] == "databricks"


def test_reap_records_the_end_of_a_databricks_run_whose_watcher_died(
    tmp_path: Path, databricks: DatabricksStandin, remote: MlflowServer
) -> None:
    import os
    import signal

    from click.testing import CliRunner

    from mlproj.cli.main import cli

    project = _spark_project(tmp_path, "print('reaped on the cluster')\n")
    submitted = mlproj.run(
        str(project),
        backend="databricks",
        backend_config={**CLUSTER, "poll-interval": 0.2},
        synchronous=False,
    )
    pid = submitted.watcher_pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 90
    while True:  # the task ran to its end on the "cluster"; nobody recorded it
        (dbx_run,) = databricks.runs.values()  # started when submit read it back
        if dbx_run.process is not None and dbx_run.process.poll() is not None:
            break
        assert time.monotonic() < deadline, "the task never ended"
        time.sleep(0.3)
    store = get_store()
    assert store.get_run(submitted.run_id).info.status == "RUNNING"
    reaped = CliRunner().invoke(cli, ["runs", "reap"])
    assert reaped.exit_code == 0, reaped.output
    assert f"Recorded FINISHED: {submitted.run_id}" in reaped.output
    run = store.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert "reaped on the cluster" in _download_log(remote, submitted.run_id, tmp_path)
