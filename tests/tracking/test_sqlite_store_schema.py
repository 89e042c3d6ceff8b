"""The SQLite store's schema: the pinned copy of MLflow's schema, new databases that open in real
MLflow without an "out-of-date schema" message, existing databases checked before a run opens,
and WAL only where the filesystem is local."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking import sqlite_schema
from mlproj.tracking.entities import Metric
from mlproj.tracking.sqlite_schema import (
    PINNED_REVISION,
    create_database,
    filesystem_type,
    find_mlflow,
    migration_head,
    wal_allowed,
)
from mlproj.tracking.sqlite_store import SqliteStore
from tests.tracking.pin_sqlite_schema import PINNED, dump_schema, mlflow_schema
from tests.tracking.tracking_mlflow_child import run_mlflow

NOOP = """\
name: noop
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "touch ran-{alpha}"
"""

pytestmark = pytest.mark.usefixtures("in_tmp_folder")


def _statements(text: str) -> list[tuple[str, ...]]:
    """The schema's statements, each as its sorted lines: MLflow's migrations write a table's
    CHECK constraints in no fixed order, which means nothing to SQLite."""
    statements: list[tuple[str, ...]] = []
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("--"):
            continue
        pending.append(line.strip().rstrip(","))
        if sqlite3.complete_statement("\n".join(pending)):
            statements.append(tuple(sorted(pending)))
            pending = []
    return sorted(statements)


def _journal_mode(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_pinned_schema_is_what_the_newest_mlflow_creates() -> None:
    # Fails when the installed (newest) MLflow adds a migration: re-pin with
    # `python tests/tracking/pin_sqlite_schema.py` and say so in docs/tracking-sqlite.md.
    made = mlflow_schema()
    assert _statements(made) == _statements(PINNED.read_text()), (
        "MLflow's schema changed: run python tests/tracking/pin_sqlite_schema.py"
    )
    assert f"-- revision: {PINNED_REVISION}\n" in made


def test_find_mlflow_reads_the_head_revision_mlflow_expects() -> None:
    found = find_mlflow()
    assert found is not None
    out = run_mlflow(
        """
        from mlflow.store.db.utils import _get_latest_schema_revision
        print(json.dumps([mlflow.__version__, _get_latest_schema_revision()]))
        """,
        "sqlite:///unused.db",
    )
    assert [found.version, found.head_revision] == out


def test_migration_head_and_a_package_without_migrations(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "aaaaaa1"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision = "bbbbbb2"\ndown_revision = "aaaaaa1"\n')
    (versions / "c.py").write_text('revision = "cccccc3"\ndown_revision = "aaaaaa1"\n')
    assert migration_head(versions.glob("*.py")) is None  # two heads: not a usable history
    (versions / "d.py").write_text('revision = "dddddd4"\ndown_revision = ("bbbbbb2", "cccccc3")\n')
    assert migration_head(versions.glob("*.py")) == "dddddd4"
    bare = tmp_path / "mlflow"  # a package without migration files
    bare.mkdir()
    (bare / "version.py").write_text('VERSION = "3.9.0"\n')
    assert sqlite_schema._install(bare, sys.executable) is None


def test_an_mlflow_skinny_on_path_is_not_asked_to_create_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlflow-skinny ships MLflow's migration files but not SQLAlchemy: it cannot create a
    database, so a new one comes from the MLflow that can (here the test's own) or the pin."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH; it builds the mlflow-skinny environment")
    venv = tmp_path / "skinny"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run(
        [uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), "mlflow-skinny==3.9.0"],
        check=True,
        timeout=300,
    )
    assert (venv / "bin" / "mlflow").is_file()
    assert list((venv / "lib").glob("python*/site-packages/mlflow/store/db_migrations/versions"))
    monkeypatch.setenv("PATH", f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    found = find_mlflow()
    assert found is not None and found.python == sys.executable  # not the skinny one on PATH
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    folder = tmp_path / "fresh"
    folder.mkdir()
    done = _mlproj("run", str(project), cwd=folder, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert "created tracking database" not in done.stderr  # the test's MLflow is at the pin
    conn = sqlite3.connect(folder / "mlflow.db")
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (PINNED_REVISION,)
        ]
        assert conn.execute("SELECT status FROM runs").fetchall() == [("FINISHED",)]
    finally:
        conn.close()


def test_new_database_from_the_pinned_schema_opens_in_mlflow(tmp_path: Path) -> None:
    db = tmp_path / "made" / "mlflow.db"
    create_database(db, log=print, mlflow=None)  # as when no MLflow is installed
    assert _statements(dump_schema(db, "mlproj")) == _statements(PINNED.read_text())
    assert not [p.name for p in db.parent.iterdir() if p.name != db.name]  # no staging left
    store = SqliteStore(f"sqlite:///{db}")
    run = store.create_run("0", run_name="pinned", tags={}, user_id="u")
    store.log_batch(run.run_id, params={"a": "1"}, metrics=[Metric("m", 2.0, 1, 0)])
    store.set_terminated(run.run_id, "FINISHED")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import json, sys
                from mlflow import MlflowClient
                r = MlflowClient().get_run(sys.argv[1])
                print(json.dumps([r.info.status, r.data.params, r.data.metrics]))
                """
            ),
            run.run_id,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**_clean_env(), **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "out-of-date" not in done.stderr and "db upgrade" not in done.stderr
    assert done.stdout.strip().splitlines()[-1] == '["FINISHED", {"a": "1"}, {"m": 2.0}]'


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def _mlproj(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**_clean_env(), **(env or {})},
        check=False,
    )


def test_a_database_missing_what_mlproj_writes_fails_before_any_run(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    db = tmp_path / "old.db"
    create_database(db, log=print, mlflow=None)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE latest_metrics")
    conn.commit()
    conn.close()
    uri = f"sqlite:///{db}"
    done = _mlproj("run", str(project), "--tracking-uri", uri, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "table latest_metrics missing" in lines[0]
    assert f"mlflow db upgrade sqlite:///{db}" in lines[0]
    assert not list(project.glob("ran-*"))  # the command never ran
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)  # no run opened
    conn.close()


def test_another_applications_database_is_refused_not_filled(tmp_path: Path) -> None:
    """A SQLite file with tables, none of them MLflow's: one line, and no MLflow table added
    (only a database with no table at all is made an MLflow one)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    done = _mlproj("run", str(project), "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "(table alembic_version, table experiments" in lines[0]
    conn = sqlite3.connect(db)
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert tables == ["users"]


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not SQLite " * 200)
    done = _mlproj("run", str(project), "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a database" in lines[0], done.stderr
    assert not list(project.glob("ran-*"))
    with pytest.raises(ExecutionException, match="names the folder"):
        SqliteStore(f"sqlite:///{tmp_path}")
    with pytest.raises(ExecutionException, match="in-memory"):
        SqliteStore("sqlite:///:memory:")


def test_an_empty_file_becomes_an_mlflow_database(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.touch()
    store = SqliteStore(f"sqlite:///{db}")
    run = store.create_run("0", run_name="in-empty", tags={}, user_id="u")
    out = run_mlflow(
        "print(json.dumps(MlflowClient().get_run(sys.argv[1]).info.run_name))",
        store.tracking_uri,
        run.run_id,
    )
    assert out == "in-empty"


def test_reads_never_create_a_database(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    store = SqliteStore(f"sqlite:///{db}")
    assert store.list_experiments() == []
    assert store.search_runs(["0"]) == []
    assert store.get_experiment_by_name("x") is None
    with pytest.raises(ExecutionException, match="not found"):
        store.get_run("f" * 32)
    assert not db.exists()
    done = _mlproj("runs", "list", "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode == 0 and "No experiments in tracking store" in done.stderr
    assert not db.exists()


# -- WAL ---------------------------------------------------------------------------------------
def test_wal_on_a_local_disk(tmp_path: Path) -> None:
    assert filesystem_type(tmp_path) in sqlite_schema.LOCAL_FILESYSTEMS
    db = tmp_path / "mlflow.db"
    SqliteStore(f"sqlite:///{db}").create_experiment("x")
    assert _journal_mode(db) == "wal"
    # A database MLflow made (rollback journal) is switched to WAL by the first mlproj write.
    made = tmp_path / "by-mlflow.db"
    run_mlflow("MlflowClient().create_experiment('e'); print('1')", f"sqlite:///{made}")
    assert _journal_mode(made) == "delete"
    SqliteStore(f"sqlite:///{made}").create_run("0", run_name=None, tags={}, user_id="u")
    assert _journal_mode(made) == "wal"


def test_no_wal_on_network_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crafted mounts table stands in for an NFS mount: none can be made on this machine."""
    shared = tmp_path / "cluster" / "home"
    shared.mkdir(parents=True)
    mounts = tmp_path / "mounts"
    spaced = str(tmp_path / "my disk").replace(" ", "\\040")  # /proc/mounts escapes spaces
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        f"server:/export/home {tmp_path / 'cluster'} nfs4 rw,relatime 0 0\n"
        f"fuse {tmp_path / 'sshfs'} fuse.sshfs rw 0 0\n"
        f"/dev/vdb {spaced} xfs rw 0 0\n"
    )
    assert filesystem_type(shared / "mlflow.db", mounts) == "nfs4"
    assert not wal_allowed(shared / "mlflow.db", mounts)
    assert filesystem_type(tmp_path / "sshfs" / "x", mounts) == "fuse.sshfs"
    assert filesystem_type(tmp_path / "my disk" / "x", mounts) == "xfs"
    assert wal_allowed(tmp_path / "my disk" / "mlflow.db", mounts)
    assert filesystem_type(tmp_path / "elsewhere", mounts) == "ext4"
    assert not wal_allowed(tmp_path / "x.db", tmp_path / "no-such-mounts-file")

    # The store itself asks wal_allowed: on such a mount the database keeps its journal.
    real = sqlite_schema.wal_allowed
    monkeypatch.setattr(sqlite_schema, "wal_allowed", lambda path: real(path, mounts))
    import mlproj.tracking.sqlite_store as store_module

    monkeypatch.setattr(store_module, "wal_allowed", lambda path: real(path, mounts))
    db = shared / "mlflow.db"
    store = SqliteStore(f"sqlite:///{db}")
    store.create_run("0", run_name=None, tags={}, user_id="u")
    assert _journal_mode(db) == "delete"


def test_wal_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJ_SQLITE_WAL", "0")
    db = tmp_path / "mlflow.db"
    SqliteStore(f"sqlite:///{db}").create_experiment("x")
    assert _journal_mode(db) == "delete"
