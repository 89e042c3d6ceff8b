"""The SQLite store and the real ``mlflow`` package on one database: the rows mlproj writes are the
rows MLflow writes, MLflow's garbage collector removes what mlproj wrote, and a project's own
``mlflow`` calls inside a real ``mlproj run`` land in the run mlproj opened."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking.entities import Metric
from mlproj.tracking.sqlite_store import SqliteStore
from tests.tracking.tracking_mlflow_child import run_mlflow

RUN_COLUMNS = (
    "name, source_type, source_name, entry_point_name, user_id, status, source_version, "
    "lifecycle_stage, experiment_id, deleted_time, end_time IS NULL, "
    "artifact_uri LIKE '%/' || experiment_id || '/' || run_uuid || '/artifacts'"
)

pytestmark = pytest.mark.usefixtures("in_tmp_folder")


def _env(uri: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_TRACKING_URI": uri}  # fmt: skip


def test_mlproj_writes_the_rows_mlflow_writes(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    store = SqliteStore(uri)
    exp = store.create_experiment("rows")
    ours = store.create_run(exp, run_name="same", tags={"mlflow.user": "u"}, user_id="u")
    store.log_batch(ours.run_id, params={"p": "1"}, metrics=[Metric("m", float("nan"), 5, 2)])
    theirs = run_mlflow(
        """
        from mlflow.entities import Metric, Param
        client = MlflowClient()
        run = client.create_run(sys.argv[1], run_name="same", tags={"mlflow.user": "u"})
        client.log_batch(run.info.run_id, params=[Param("p", "1")],
                         metrics=[Metric("m", float("nan"), 5, 2)])
        print(json.dumps(run.info.run_id))
        """,
        uri,
        exp,
    )
    conn = sqlite3.connect(db)
    try:

        def rows(run_id: str) -> list[object]:
            run = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = ?", (run_id,))
            return [
                run.fetchone(),
                conn.execute(
                    "SELECT key, value FROM tags WHERE run_uuid = ? ORDER BY key", (run_id,)
                ).fetchall(),
                conn.execute(
                    "SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)
                ).fetchall(),
                conn.execute(
                    "SELECT key, value, timestamp, step, is_nan, typeof(value) FROM metrics "
                    "WHERE run_uuid = ?",
                    (run_id,),
                ).fetchall(),
                conn.execute(
                    "SELECT key, value, timestamp, step, is_nan FROM latest_metrics "
                    "WHERE run_uuid = ?",
                    (run_id,),
                ).fetchall(),
            ]

        assert rows(ours.run_id) == rows(str(theirs))
        experiments = conn.execute(
            "SELECT experiment_id, name, lifecycle_stage, artifact_location, workspace, "
            "creation_time = last_update_time FROM experiments ORDER BY experiment_id"
        ).fetchall()
    finally:
        conn.close()
    assert experiments == [
        (0, "Default", "active", str(tmp_path / "mlruns" / "0"), "default", 1),
        (int(exp), "rows", "active", str(tmp_path / "mlruns" / exp), "default", 1),
    ]


def test_mlflow_gc_removes_what_mlproj_wrote(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = SqliteStore(uri)
    keep = store.create_run("0", run_name="keep", tags={}, user_id="u")
    gone = store.create_run("0", run_name="gone", tags={}, user_id="u")
    for info in (keep, gone):
        store.log_batch(info.run_id, params={"a": "1"}, metrics=[Metric("m", 1.0, 1, 0)])
        log = tmp_path / "output.log"
        log.write_text("log\n")
        store.log_artifact(info.run_id, log, "mlproj")
        store.set_terminated(info.run_id, "FINISHED")
    gone_artifacts = store.local_artifact_dir(gone.run_id)
    assert gone_artifacts is not None and (gone_artifacts / "mlproj" / "output.log").is_file()
    run_mlflow("MlflowClient().delete_run(sys.argv[1]); print('1')", uri, gone.run_id)
    assert [r.run_id for r in store.search_runs(["0"])] == [keep.run_id]  # deleted: not listed
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(uri),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not gone_artifacts.exists()
    try:
        store.get_run(gone.run_id)
        raise AssertionError("the collected run is still there")
    except ExecutionException as exc:
        assert "not found" in str(exc)
    assert store.get_run(keep.run_id).params == {"a": "1"}


TRAIN = """\
import os, sys
seen = os.environ["MLFLOW_RUN_ID"], os.environ["MLFLOW_TRACKING_URI"]  # MLflow pops the run id
import mlflow
mlflow.log_param("from_code", "yes")
for step in range(3):
    mlflow.log_metric("score", 0.25 * (step + 1), step=step)
mlflow.set_tag("logged.by", "project")
print("seen", *seen)
"""


def test_a_projects_own_mlflow_logs_into_the_run(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: tiny\nentry_points:\n  main:\n    parameters:\n      lr: {type: float, default: 0.1}\n"
        f"    command: '{shlex.quote(sys.executable)} train.py {{lr}}'\n"
    )
    (project / "train.py").write_text(TRAIN)
    db = tmp_path / "runs" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "-P", "lr=0.5"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(uri),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (run,) = SqliteStore(uri).search_runs(["0"])
    assert f"seen {run.run_id} {uri}" in done.stdout
    assert run.info.status == "FINISHED"
    assert run.params == {"lr": "0.5", "from_code": "yes"}
    assert run.metrics == {"score": 0.75}
    assert run.tags["logged.by"] == "project" and run.tags["mlflow.source.type"] == "PROJECT"
    out = run_mlflow(
        """
        client = MlflowClient()
        r = client.get_run(sys.argv[1])
        print(json.dumps([r.info.status, len(client.get_metric_history(r.info.run_id, "score")),
                          [f.path for f in client.list_artifacts(r.info.run_id, "mlproj")]]))
        """,
        uri,
        run.run_id,
    )
    assert out == ["FINISHED", 3, ["mlproj/output.log"]]


RUN_IN_PROCESS = """\
import atexit, json, sys
heavy = ("mlflow", "sqlalchemy", "alembic", "dataclasses", "inspect")
atexit.register(lambda: print(json.dumps([m for m in heavy if m in sys.modules])))
sys.argv = ["mlproj", "run", sys.argv[1], "-q"]
from mlproj.cli.entry import main
main()
"""


def test_a_run_into_sqlite_imports_neither_mlflow_nor_sqlalchemy(tmp_path: Path) -> None:
    """The whole `mlproj run` path, a new database and an existing one (the test's MLflow is
    installed, at the pinned revision: found, never imported)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text("name: p\nentry_points:\n  main:\n    command: 'true'\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Without coverage's child measurement (CI's coverage pass), which imports inspect itself.
    env = {k: v for k, v in _env(uri).items() if not k.startswith("COVERAGE_")}
    for _ in ("new database", "existing database"):
        done = subprocess.run(
            [sys.executable, "-c", RUN_IN_PROCESS, str(project)],
            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"
    assert [r.info.status for r in SqliteStore(uri).search_runs(["0"])] == ["FINISHED"] * 2
