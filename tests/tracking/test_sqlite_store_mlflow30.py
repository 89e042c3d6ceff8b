"""The oldest MLflow the SQLite store supports (3.0) against mlproj, in its own virtualenv (built
once with uv, kept in the temp folder): a new database made by that MLflow because its schema
differs from the pinned one, and a database that MLflow 3.0 made itself, written by mlproj and
read back by MLflow 3.0."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from mlproj.tracking.sqlite_schema import PINNED_REVISION, migration_head
from mlproj.tracking.sqlite_store import SqliteStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_tmp_folder")]

OLD = "3.0.1"


@pytest.fixture(scope="module")
def old_mlflow() -> Path:
    """The bin folder of a virtualenv holding mlflow==3.0.1."""
    venv = Path(tempfile.gettempdir()) / f"mlproj-tests-mlflow-{OLD}-sqla20"
    python = venv / "bin" / "python"
    done_marker = venv / ".complete"
    if not done_marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        subprocess.run([uv, "venv", "-q", str(venv), "--python", sys.executable], check=True)
        subprocess.run(
            # MLflow 3.0 predates SQLAlchemy 2.1 (it imports a pool class 2.1 removed).
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                f"mlflow=={OLD}",
                "sqlalchemy<2.1",
            ],
            check=True,
            timeout=1200,
        )
        done_marker.touch()
    return venv / "bin"


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, **extra}


def _old_python(bin_dir: Path, code: str, uri: str, *args: str) -> object:
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(MLFLOW_TRACKING_URI=uri),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "out-of-date" not in done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _revision(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def test_a_new_database_is_made_by_the_users_older_mlflow(old_mlflow: Path, tmp_path: Path) -> None:
    old_head = migration_head(
        next((old_mlflow.parent / "lib").glob("python*/site-packages/mlflow/store/db_migrations"))
        .joinpath("versions")
        .glob("*.py")
    )
    assert old_head is not None and old_head != PINNED_REVISION
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    parameters:\n      n: {type: int, default: 1}\n"
        "    command: 'echo run {n}'\n"
    )
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    # The user's `mlflow` on PATH is 3.0.1 (mlproj's own Python has a newer one importable).
    env = _env(MLFLOW_TRACKING_URI=uri, PATH=f"{old_mlflow}{os.pathsep}{os.environ['PATH']}")
    outputs = []
    for n in (1, 2):
        done = subprocess.run(
            [sys.executable, "-m", "mlproj", "run", str(project), "-P", f"n={n}"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stderr)
    assert f"with MLflow {OLD}'s schema" in outputs[0] and "once)" in outputs[0]
    assert "schema" not in outputs[1]  # made once
    assert _revision(db) == old_head
    out = _old_python(
        old_mlflow,
        """
        import json
        from mlflow import MlflowClient
        runs = MlflowClient().search_runs(["0"], order_by=["start_time ASC"])
        print(json.dumps([[r.info.status, r.data.params, r.info.run_name != ""] for r in runs]))
        """,
        uri,
    )
    assert out == [["FINISHED", {"n": "1"}, True], ["FINISHED", {"n": "2"}, True]]


def test_a_database_mlflow_30_made_is_written_as_it_is(old_mlflow: Path, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    theirs = _old_python(
        old_mlflow,
        """
        import json
        import mlflow
        from mlflow import MlflowClient
        client = MlflowClient()
        exp = client.create_experiment("made-by-3.0")
        run = client.create_run(exp, run_name="theirs")
        client.log_metric(run.info.run_id, "m", 1.5, step=2)
        client.set_terminated(run.info.run_id)
        print(json.dumps([exp, run.info.run_id]))
        """,
        uri,
    )
    assert isinstance(theirs, list)
    exp_id, their_run = theirs
    revision = _revision(db)
    store = SqliteStore(uri)
    seen = store.get_run(their_run)
    assert seen.info.status == "FINISHED" and seen.metrics == {"m": 1.5}
    ours = store.create_run(exp_id, run_name="ours", tags={"k": "v"}, user_id="u")
    store.log_batch(ours.run_id, params={"p": "1"})
    store.set_terminated(ours.run_id, "FAILED")
    other = store.create_experiment("made-by-mlproj")
    assert _revision(db) == revision  # the schema is left as MLflow made it
    out = _old_python(
        old_mlflow,
        """
        import json, sys
        from mlflow import MlflowClient
        client = MlflowClient()
        r = client.get_run(sys.argv[1])
        e = client.get_experiment(sys.argv[2])
        print(json.dumps([r.info.status, r.info.run_name, r.data.params, r.data.tags["k"],
                          e.name, e.artifact_location.endswith("/" + sys.argv[2])]))
        """,
        uri,
        ours.run_id,
        other,
    )
    assert out == ["FAILED", "ours", {"p": "1"}, "v", "made-by-mlproj", True]
