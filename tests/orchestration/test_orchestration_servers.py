"""The orchestration store calls against a real MLflow server (REST), mlproj's SQLite store
and MLflow's SQL store: tag lookups (reuse, children) and reopening a parent; then a sweep and
--reuse over REST."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from orch_support import cli, trial_project

from mlproj.statuses import RunStatus
from mlproj.tags import MLFLOW_PARENT_RUN_ID, TAG_KIND, TAG_RUN_KEY
from mlproj.tracking import get_store

pytestmark = pytest.mark.slow  # a real MLflow server and MLflow's SQL store


@pytest.mark.parametrize("kind", ["rest", "sqlite", "mlflow-sql"])
def test_tag_lookup_and_reopen(kind: str, mlflow_server: Any, tmp_path: Path) -> None:
    uri = {
        "rest": mlflow_server.url,
        "sqlite": f"sqlite:///{tmp_path / 'mlflow.db'}",  # mlproj's own SQLite store
        "mlflow-sql": f"sqlite+pysqlite:///{tmp_path / 'mlflow.db'}",  # MLflow's, SQLAlchemy
    }[kind]
    store = get_store(uri)
    expected = {"rest": "RestStore", "sqlite": "SqliteStore", "mlflow-sql": "MlflowStore"}
    assert type(store).__name__ == expected[kind]
    experiment = store.create_experiment(f"orch-{uuid.uuid4().hex[:8]}")
    key = uuid.uuid4().hex
    made = []
    for status in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.FINISHED):
        info = store.create_run(experiment, run_name=None, tags={TAG_RUN_KEY: key}, user_id="t")
        store.set_terminated(info.run_id, status)
        made.append(info.run_id)
    store.create_run(experiment, run_name=None, tags={TAG_RUN_KEY: "other"}, user_id="t")
    found = store.find_runs_by_tag([experiment], TAG_RUN_KEY, key, status=RunStatus.FINISHED)
    assert sorted(r.run_id for r in found) == sorted([made[0], made[2]])
    assert len(store.find_runs_by_tag([experiment], TAG_RUN_KEY, key)) == 3
    assert store.find_runs_by_tag([experiment], TAG_RUN_KEY, "nope") == []
    store.reopen_run(made[1])
    reopened = store.get_run(made[1])
    assert reopened.info.status == RunStatus.RUNNING


def test_a_sweep_and_reuse_over_a_real_mlflow_server(mlflow_server: Any, tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    experiment = f"orch-{uuid.uuid4().hex[:8]}"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    done = cli(
        "sweep",
        str(project),
        "-P",
        "x=0.1,0.2",
        "--max-parallel",
        "2",
        "--metric",
        "loss",
        "--experiment-name",
        experiment,
        **env,
    )
    assert done.returncode == 0, done.stderr
    store = get_store(mlflow_server.url)
    exp = store.get_experiment_by_name(experiment)
    assert exp is not None
    (parent,) = store.find_runs_by_tag([exp.experiment_id], TAG_KIND, "sweep")
    trials = store.find_runs_by_tag([exp.experiment_id], MLFLOW_PARENT_RUN_ID, parent.run_id)
    assert len(trials) == 2 and all("loss" in t.metrics for t in trials)
    listed = cli("runs", "list", "--parent", parent.run_id, "--experiment-name", experiment, **env)
    assert all(t.run_id in listed.stdout for t in trials)
    again = cli(
        "run", str(project), "-P", "x=0.1", "--reuse", "--experiment-name", experiment, **env
    )
    assert again.returncode == 0, again.stderr
    reused = next(t for t in trials if t.params["x"] == "0.1")
    assert f"reusing run {reused.run_id}" in again.stderr
