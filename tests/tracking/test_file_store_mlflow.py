"""FileStore and the real ``mlflow`` package (3.x, installed as a test dependency) share a store.

MLflow runs in child processes, as it does inside a project run, with
``MLFLOW_ALLOW_FILE_STORE=true`` (required by MLflow >= 3.13 for file stores).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.tracking.entities import Metric
from mlproj.tracking.file_store import FileStore
from tests.tracking.tracking_mlflow_child import run_mlflow


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore((tmp_path / "mlruns").as_uri())


def test_mlflow_reads_what_file_store_wrote(store: FileStore) -> None:
    experiment_id = store.create_experiment("interop")
    first = store.create_run(
        experiment_id,
        run_name="first-run",
        tags={"mlflow.user": "alice", "mlflow.source.type": "PROJECT", "nested/key": "deep"},
        user_id="alice",
        start_time=1_795_000_000_000,
    )
    store.log_batch(
        first.run_id,
        params={"alpha": "0.5", "data/path": "/in put"},
        metrics=[
            Metric("loss", 0.9, 1_795_000_000_100, 0),
            Metric("loss", 0.4, 1_795_000_000_200, 1),
        ],
    )
    store.set_terminated(first.run_id, "FINISHED", end_time=1_795_000_000_900)
    second = store.create_run(
        experiment_id, run_name=None, tags={}, user_id="bob", start_time=1_795_000_001_000
    )
    store.log_batch(second.run_id, params={"alpha": "0.9"})
    store.set_tag(second.run_id, "mlflow.runName", "renamed")
    default_run = store.create_run("0", run_name="in-default", tags={}, user_id="carol")

    out = run_mlflow(
        """
        exp_id, first, second = sys.argv[1:4]
        client = MlflowClient()
        r = client.get_run(first)
        def info(r):
            return dict(status=r.info.status, name=r.info.run_name, start=r.info.start_time,
                        end=r.info.end_time, user=r.info.user_id, exp=r.info.experiment_id,
                        artifact_uri=r.info.artifact_uri)
        print(json.dumps({
            "experiments": sorted([e.experiment_id, e.name] for e in client.search_experiments()),
            "by_name": client.get_experiment_by_name("interop").experiment_id,
            "first": info(r), "params": r.data.params, "tags": r.data.tags,
            "metrics": r.data.metrics,
            "history": [[m.timestamp, m.value, m.step]
                        for m in client.get_metric_history(first, "loss")],
            "second": info(client.get_run(second)),
            "filtered": [x.info.run_id for x in client.search_runs(
                [exp_id], filter_string="params.alpha = '0.9'")],
            "all": [x.info.run_id for x in client.search_runs(
                [exp_id], order_by=["start_time DESC"])],
            "default_runs": [x.info.run_name for x in client.search_runs(["0"])],
        }))
        """,
        store.tracking_uri,
        experiment_id,
        first.run_id,
        second.run_id,
    )
    assert out["experiments"] == sorted([["0", "Default"], [experiment_id, "interop"]])
    assert out["by_name"] == experiment_id
    assert out["first"] == {
        "status": "FINISHED",
        "name": "first-run",
        "start": 1_795_000_000_000,
        "end": 1_795_000_000_900,
        "user": "alice",
        "exp": experiment_id,
        "artifact_uri": first.artifact_uri,
    }
    assert out["params"] == {"alpha": "0.5", "data/path": "/in put"}
    assert out["tags"] == {
        "mlflow.user": "alice",
        "mlflow.source.type": "PROJECT",
        "nested/key": "deep",
        "mlflow.runName": "first-run",
    }
    assert out["metrics"] == {"loss": 0.4}
    assert out["history"] == [[1_795_000_000_100, 0.9, 0], [1_795_000_000_200, 0.4, 1]]
    assert out["second"]["status"] == "RUNNING" and out["second"]["name"] == "renamed"
    assert out["second"]["end"] is None
    assert out["filtered"] == [second.run_id]
    assert out["all"] == [second.run_id, first.run_id]
    assert out["default_runs"] == [default_run.run_name] == ["in-default"]


def test_mlflow_logs_into_our_run_and_its_own_runs_are_readable(store: FileStore) -> None:
    ours = store.create_run(
        "0", run_name="project-run", tags={"mlflow.user": "u"}, user_id="u", start_time=1
    )
    store.log_batch(ours.run_id, params={"alpha": "0.1"})

    out = run_mlflow(
        """
        # Inside a project: MLFLOW_RUN_ID points at the run mlproj opened.
        mlflow.log_param("from_child", "yes")
        mlflow.log_metric("child_metric", 1.5, step=3)
        mlflow.log_metric("child_metric", 0.5, step=1)
        mlflow.set_tag("child.tag", "t")
        mlflow.set_tag("nested/child", "n")
        mlflow.end_run()  # MLflow marks it FINISHED, rewriting meta.yaml its own way
        os.environ.pop("MLFLOW_RUN_ID", None)  # end_run() may already have dropped it

        mlflow.set_experiment("made-by-mlflow")
        with mlflow.start_run(run_name="mlflow-own") as run:
            mlflow.log_params({"lr": "0.01", "deep/param": "x"})
            for step, value in enumerate([0.3, 0.2, 0.1]):
                mlflow.log_metric("loss", value, step=step)
            mlflow.set_tag("stage", "train")
        failed = mlflow.start_run()
        mlflow.end_run("FAILED")
        print(json.dumps({"own": run.info.run_id, "failed": failed.info.run_id,
                          "exp": run.info.experiment_id}))
        """,
        store.tracking_uri,
        run_id=ours.run_id,
    )

    run = store.get_run(ours.run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.info.run_name == "project-run"
    assert run.params == {"alpha": "0.1", "from_child": "yes"}
    assert run.metrics == {"child_metric": 1.5}
    assert run.tags["child.tag"] == "t" and run.tags["nested/child"] == "n"
    assert [(m.value, m.step) for m in store.get_metric_history(ours.run_id, "child_metric")] == [
        (1.5, 3),
        (0.5, 1),
    ]

    experiment = store.get_experiment_by_name("made-by-mlflow")
    assert experiment is not None and experiment.experiment_id == out["exp"]
    assert "made-by-mlflow" in {e.name for e in store.list_experiments()}
    own = store.get_run(out["own"])
    assert own.info.run_name == "mlflow-own" and own.info.status == "FINISHED"
    assert own.info.experiment_id == out["exp"]
    assert own.params == {"lr": "0.01", "deep/param": "x"}
    assert own.metrics == {"loss": 0.1}
    assert own.tags["stage"] == "train" and own.tags["mlflow.runName"] == "mlflow-own"
    assert store.local_artifact_dir(out["own"]) == (
        store.root / out["exp"] / out["own"] / "artifacts"
    )
    found = store.search_runs([out["exp"]])
    assert {r.run_id for r in found} == {out["own"], out["failed"]}
    assert [r.run_id for r in store.search_runs([out["exp"]], status="FAILED")] == [out["failed"]]
    assert [r.run_id for r in store.search_runs([out["exp"]], params={"lr": "0.01"})] == [
        out["own"]
    ]

    # We can keep writing to runs MLflow created and rewrote.
    store.set_tag(out["own"], "mlflow.runName", "renamed-by-mlproj")
    store.set_terminated(out["failed"], "KILLED")
    assert store.get_run(out["own"]).info.run_name == "renamed-by-mlproj"
    assert store.get_run(out["failed"]).info.status == "KILLED"


def test_mlflow_2_reads_and_writes_the_same_store(store: FileStore, tmp_path: Path) -> None:
    """MLflow 2.x (which needs ``run_uuid`` in meta.yaml), from PyPI into a uv virtualenv."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH; it builds the MLflow 2.x environment")
    venv = tmp_path / "mlflow2"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "-p", str(python), "mlflow-skinny>=2.20,<3"],
        check=True,
        timeout=300,
    )
    experiment_id = store.create_experiment("two")
    ours = store.create_run(
        experiment_id, run_name="r2", tags={"nested/key": "v"}, user_id="u", start_time=5
    )
    store.log_batch(ours.run_id, params={"alpha": "0.5"}, metrics=[Metric("m", 1.5, 6, 2)])
    store.set_terminated(ours.run_id, "FINISHED", end_time=9)
    out = run_mlflow(
        """
        exp_id, run_id = sys.argv[1:3]
        client = MlflowClient()
        r = client.get_run(run_id)
        found = client.search_runs([exp_id], filter_string="params.alpha = '0.5'")
        with mlflow.start_run(experiment_id=exp_id, run_name="by-mlflow2") as own:
            mlflow.log_param("x", "1")
        print(json.dumps({"version": mlflow.__version__, "status": r.info.status,
                          "name": r.info.run_name, "times": [r.info.start_time, r.info.end_time],
                          "params": r.data.params, "metrics": r.data.metrics,
                          "nested": r.data.tags.get("nested/key"),
                          "found": [x.info.run_id for x in found], "own": own.info.run_id}))
        """,
        store.tracking_uri,
        experiment_id,
        ours.run_id,
        python=python,
        allow_file_store=False,
    )
    assert out["version"].startswith("2.")
    assert (out["status"], out["name"], out["times"]) == ("FINISHED", "r2", [5, 9])
    assert (out["params"], out["metrics"], out["nested"]) == ({"alpha": "0.5"}, {"m": 1.5}, "v")
    assert out["found"] == [ours.run_id]
    own = store.get_run(out["own"])
    assert (own.info.run_name, own.info.status, own.params) == (
        "by-mlflow2",
        "FINISHED",
        {"x": "1"},
    )
