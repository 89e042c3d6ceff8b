"""One ``mlflow.db``, many writers at once: mlproj processes and real MLflow clients; a database
held locked by another process; processes killed in the middle of a write."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlproj.tracking.sqlite_store import SqliteStore
from tests.tracking.tracking_mlflow_child import run_mlflow

pytestmark = pytest.mark.usefixtures("in_tmp_folder")

# How long the other process keeps the database locked: a few seconds (past SQLite's own busy
# wait) shows the principle, bookkeeping waits and the command does not, in both journal modes;
# the issue's own case, 30 s, runs once more with WAL (mlproj's default on a local disk).
LOCK_SECONDS = float(os.environ.get("MLPROJ_TEST_LOCK_SECONDS", "4"))
ISSUE_LOCK_SECONDS = 30.0

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
    conn.execute("BEGIN EXCLUSIVE")
    print(time.time(), flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("ROLLBACK")
    print(time.time(), flush=True)
    """
)

MLFLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.01)
    client = MlflowClient()
    exp = client.get_experiment_by_name("shared") or None
    exp_id = exp.experiment_id if exp else "0"
    for n in range(5):
        run = client.create_run(exp_id, run_name=f"mlflow-{sys.argv[2]}-{n}")
        client.log_batch(run.info.run_id, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(40)])
        for i in range(10):
            client.log_metric(run.info.run_id, "single", float(i), step=i)
        client.log_param(run.info.run_id, "n", str(n))
        client.set_terminated(run.info.run_id, "FINISHED")
    print("done")
    """
)


def _env(uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "MLFLOW_TRACKING_URI": uri, **extra}


def _project(folder: Path, command: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLproject").write_text(
        f"name: p\nentry_points:\n  main:\n    parameters:\n      i: {{type: int, default: 0}}\n"
        f"    command: {command!r}\n"
    )
    return folder


def _integrity(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_mlproj_runs_and_mlflow_clients_write_at_once(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    SqliteStore(uri).create_experiment("shared")
    project = _project(tmp_path / "proj", "echo run {i}")
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", MLFLOW_WRITER, str(go), str(w)],
            env=_env(uri),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    go.touch()
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "mlproj", "run", str(project), "-P", f"i={i}",
             "--experiment-name", "shared"],
            env=_env(uri),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]  # fmt: skip
    for process in [*writers, *runs]:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        assert "locked" not in err.lower()
    _integrity(db)
    store = SqliteStore(uri)
    exp = store.get_experiment_by_name("shared")
    assert exp is not None
    found = store.search_runs([exp.experiment_id], max_results=100)
    ours = [r for r in found if "i" in r.params]
    theirs = [r for r in found if r.info.run_name.startswith("mlflow-")]
    assert sorted(r.params["i"] for r in ours) == [str(i) for i in range(8)]
    assert len(theirs) == 15
    assert {r.info.status for r in found} == {"FINISHED"}
    for run in theirs:
        assert len(store.get_metric_history(run.run_id, "m")) == 40
        assert run.metrics == {"m": 39.0, "single": 9.0}


def test_detached_runs_all_finish(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    project = _project(tmp_path / "proj", "echo detached {i}")
    started = [
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlproj",
                "run",
                str(project),
                "-P",
                f"i={i}",
                "--no-wait",
                "-q",
            ],
            env=_env(uri),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        for i in range(6)
    ]
    for done in started:
        assert done.returncode == 0, done.stderr
    store = SqliteStore(uri)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        statuses = [r.info.status for r in store.search_runs(["0"])]
        if len(statuses) == 6 and set(statuses) == {"FINISHED"}:
            break
        time.sleep(0.5)
    assert sorted(r.params["i"] for r in store.search_runs(["0"])) == [str(i) for i in range(6)]
    assert {r.info.status for r in store.search_runs(["0"])} == {"FINISHED"}
    _integrity(db)


@pytest.mark.parametrize(
    ("wal", "lock_seconds"),
    [
        ("on", LOCK_SECONDS),
        ("off", LOCK_SECONDS),
        pytest.param("on", ISSUE_LOCK_SECONDS, marks=pytest.mark.slow, id="on-30s"),
    ],
)
def test_a_locked_database_delays_the_bookkeeping_not_the_command(
    tmp_path: Path, wal: str, lock_seconds: float
) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    extra = {"MLPROJ_SQLITE_WAL": "1" if wal == "on" else "0"}
    project = _project(
        tmp_path / "proj",
        "date +%s.%N > started; sleep 1; date +%s.%N > ended",
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project)],
        env=_env(uri, **extra),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = project / "started"
    deadline = time.monotonic() + 240
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.exists(), run.communicate(timeout=60)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), str(lock_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None
    locked_at = float(locker.stdout.readline())
    out, err = run.communicate(timeout=300)
    exited_at = time.time()
    released_at = float(locker.stdout.readline())
    locker.wait(timeout=60)
    locker.stdout.close()
    assert run.returncode == 0, err
    assert "locked" not in err.lower()
    command_took = float((project / "ended").read_text()) - float(started.read_text())
    assert command_took < min(lock_seconds, 4)  # the command (sleep 1) ran at its own pace ...
    assert exited_at >= released_at - 0.05 >= locked_at  # ... the final status waited
    assert released_at - locked_at >= lock_seconds - 0.5  # for the whole lock
    (only,) = SqliteStore(uri).search_runs(["0"])
    assert only.info.status == "FINISHED"
    # The end time is the command's, not the moment the lock let it be written.
    ended = float((project / "ended").read_text())
    assert only.info.end_time is not None
    assert ended - 0.05 <= only.info.end_time / 1000 < released_at


def test_a_lock_at_the_start_waits_then_runs(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    SqliteStore(uri).create_experiment("x")
    project = _project(tmp_path / "proj", "echo ran > ran")
    # Longer than mlproj takes to start, so it reaches the database while the lock is held.
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), str(2 * LOCK_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None
    float(locker.stdout.readline())
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project)],
        env=_env(uri, MLPROJ_SQLITE_WAL="0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    released_at = float(locker.stdout.readline())
    locker.wait(timeout=60)
    locker.stdout.close()
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stderr.lower()
    (only,) = SqliteStore(uri).search_runs(["0"])
    assert only.info.status == "FINISHED"
    assert only.info.start_time / 1000 >= released_at - 0.05  # opened once the lock was gone


def test_a_lock_past_the_timeout_is_one_line_before_any_run(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    SqliteStore(uri).create_experiment("x")
    project = _project(tmp_path / "proj", "echo ran > ran")
    # Held far longer than mlproj waits; stopped once mlproj has given up.
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), "600"], stdout=subprocess.PIPE, text=True
    )
    assert locker.stdout is not None
    float(locker.stdout.readline())
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project)],
        env=_env(uri, MLPROJ_SQLITE_TIMEOUT="1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    locker.kill()
    locker.wait(timeout=60)
    locker.stdout.close()
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "stayed locked by another process for 1 s" in lines[0]
    assert "MLPROJ_SQLITE_TIMEOUT" in lines[0] and "database is locked" not in lines[0]
    assert not (project / "ran").exists()
    assert SqliteStore(uri).search_runs(["0", "1"]) == []


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from mlproj.tracking.entities import Metric
    from mlproj.tracking.sqlite_store import SqliteStore
    store = SqliteStore(sys.argv[1])
    runs = [store.create_run("0", run_name=None, tags={}, user_id="w").run_id for _ in range(3)]
    print("ready", flush=True)
    batch = 0
    while True:
        for run_id in runs:
            store.log_batch(
                run_id,
                params={f"b{batch}-{i}": str(i) for i in range(20)},
                tags={f"t{i}": str(batch) for i in range(5)},
                metrics=[Metric(f"k{i % 7}", float(batch * 1000 + i), batch, i) for i in range(300)],
            )
        batch += 1
    """
)


def test_a_process_killed_mid_write_leaves_the_database_consistent(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    SqliteStore(uri).create_experiment("x")
    rng = random.Random(17)
    for _ in range(4):
        writer = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, uri], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.3, 1.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        writer.stdout.close()
        _integrity(db)
        conn = sqlite3.connect(db)
        try:
            # Each batch is all there or not at all.
            for run_id, points, params in conn.execute(
                "SELECT r.run_uuid, (SELECT count(*) FROM metrics m WHERE m.run_uuid = r.run_uuid),"
                " (SELECT count(*) FROM params p WHERE p.run_uuid = r.run_uuid) FROM runs r"
            ):
                assert points % 300 == 0 and params % 20 == 0 and points // 300 == params // 20
                latest = dict(
                    conn.execute(
                        "SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)
                    ).fetchall()
                )
                newest = dict(
                    conn.execute(
                        "SELECT key, value FROM metrics AS m WHERE run_uuid = ? AND "
                        "(step, timestamp, value) = (SELECT step, timestamp, value FROM metrics "
                        "WHERE run_uuid = m.run_uuid AND key = m.key "
                        "ORDER BY step DESC, timestamp DESC, value DESC LIMIT 1)",
                        (run_id,),
                    ).fetchall()
                )
                assert latest == newest
        finally:
            conn.close()
    ids = [r.run_id for r in SqliteStore(uri).search_runs(["0"])]
    assert len(ids) == 12
    counts = run_mlflow(
        "print(json.dumps([len(MlflowClient().get_run(r).data.params) for r in sys.argv[1:]]))",
        uri,
        *ids,
    )
    assert all(n % 20 == 0 for n in counts) and sum(counts) > 0
