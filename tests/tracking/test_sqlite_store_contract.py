"""The store contract on both local stores (``both_stores``: file store and SQLite), and the real
``mlflow`` package (in a child process, as inside a run) reading what the store wrote."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking import get_store
from mlproj.tracking.artifacts import read_artifact
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Metric
from tests.tracking.tracking_mlflow_child import run_mlflow


@pytest.fixture
def store(both_stores: str) -> TrackingStore:
    return get_store()


def test_store_kind_follows_the_uri(store: TrackingStore, both_stores: str) -> None:
    kind = "FileStore" if both_stores.startswith("file:") else "SqliteStore"
    assert type(store).__name__ == kind
    assert store.tracking_uri == both_stores


def test_experiments_create_find_and_list(store: TrackingStore) -> None:
    assert store.get_experiment_by_name("exp-a") is None
    first = store.create_experiment("exp-a")
    assert store.create_experiment("exp-a") == first  # existing name: same id
    second = store.create_experiment("exp-b")
    assert first != second
    got = store.get_experiment(first)
    assert got is not None and got.name == "exp-a" and got.lifecycle_stage == "active"
    assert got.artifact_location.rstrip("/").endswith(f"/{first}")
    assert store.get_experiment_by_name("exp-a") == got
    assert store.get_experiment("987654321") is None
    assert store.get_experiment("not-a-number") is None
    default = store.get_experiment("0")
    assert default is not None and default.name == "Default"
    assert {"exp-a", "exp-b", "Default"} <= {e.name for e in store.list_experiments()}
    assert store.resolve_experiment() == "0"
    with pytest.raises(ExecutionException, match="Invalid experiment name"):
        store.create_experiment("  ")


def test_run_lifecycle_params_tags_metrics(store: TrackingStore) -> None:
    exp = store.create_experiment("life")
    info = store.create_run(
        exp, run_name="first", tags={"team": "a", "mlflow.user": "alice"}, user_id="alice"
    )
    assert info.status == "RUNNING" and info.run_name == "first" and info.end_time is None
    assert info.artifact_uri.endswith(f"/{exp}/{info.run_id}/artifacts")
    assert len(info.run_id) == 32
    store.log_batch(
        info.run_id,
        params={"lr": "0.1", "path": "/in put"},
        tags={"nested/key": "deep"},
        metrics=[
            Metric("loss", 0.9, 1_000, 0),
            Metric("loss", 0.4, 2_000, 1),
            Metric("loss", 0.7, 1_500, 1),  # same step, older: not the latest
            Metric("odd", math.nan, 5, 0),
            Metric("big", math.inf, 5, 0),
        ],
    )
    store.log_batch(info.run_id, params={"lr": "0.1"})  # the same value again is fine
    with pytest.raises(ExecutionException, match="immutable"):
        store.log_batch(info.run_id, params={"lr": "0.2", "new": "x"})
    run = store.get_run(info.run_id)
    assert "new" not in run.params  # a conflict leaves the run unchanged
    assert run.params == {"lr": "0.1", "path": "/in put"}
    assert run.tags["team"] == "a" and run.tags["nested/key"] == "deep"
    assert run.tags["mlflow.runName"] == "first"
    assert run.metrics["loss"] == pytest.approx(0.4)
    assert math.isnan(run.metrics["odd"])
    assert run.metrics["big"] > 1e308
    history = store.get_metric_history(info.run_id, "loss")
    assert sorted((m.step, m.timestamp, m.value) for m in history) == [
        (0, 1_000, 0.9),
        (1, 1_500, 0.7),
        (1, 2_000, 0.4),
    ]
    store.set_tag(info.run_id, "mlflow.runName", "renamed")
    assert store.get_run(info.run_id).info.run_name == "renamed"
    assert store.get_run_status(info.run_id) == "RUNNING"
    store.set_terminated(info.run_id, "KILLED", end_time=info.start_time + 1234)
    done = store.get_run(info.run_id)
    assert done.info.status == "KILLED" and done.info.end_time == info.start_time + 1234
    with pytest.raises(ExecutionException, match="Invalid final status"):
        store.set_terminated(info.run_id, "RUNNING")


def test_bad_input_is_one_line(store: TrackingStore) -> None:
    info = store.create_run("0", run_name=None, tags={}, user_id="u")
    assert info.run_name  # a random adjective-noun-NNN name
    for kwargs, match in (
        ({"params": {"../up": "x"}}, "Invalid param key"),
        ({"tags": {"t": "x" * 8001}}, "limit is 8000"),
        ({"params": {"p": "x" * 6001}}, "limit is 6000"),
        ({"metrics": [Metric("m", "high", 1, 0)]}, "metrics must be numbers"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ExecutionException, match=match) as caught:
            store.log_batch(info.run_id, **kwargs)
        assert "\n" not in str(caught.value)
    with pytest.raises(
        ExecutionException, match="Run 'f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0' not found"
    ):
        store.get_run("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0")
    with pytest.raises(ExecutionException, match="not found"):
        store.set_terminated("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0", "FINISHED")
    with pytest.raises(ExecutionException, match="no such experiment"):
        store.create_run("424242", run_name=None, tags={}, user_id="u")
    with pytest.raises(ExecutionException, match="disagree"):
        store.create_run("0", run_name="a", tags={"mlflow.runName": "b"}, user_id="u")


def test_search_filters_order_and_infos(store: TrackingStore) -> None:
    exp = store.create_experiment("search")
    other = store.create_experiment("other")
    now = int(time.time() * 1000)
    ids = []
    for i in range(7):
        info = store.create_run(exp, run_name=f"r{i}", tags={}, user_id="u", start_time=now + i)
        store.log_batch(info.run_id, params={"lr": "0.1" if i % 2 else "0.2", "q": "it's"})
        if i < 3:
            store.set_terminated(info.run_id, "FINISHED")
        ids.append(info.run_id)
    store.create_run(other, run_name="elsewhere", tags={}, user_id="u")
    assert [r.run_id for r in store.search_runs([exp])] == ids[::-1]
    assert {r.run_id for r in store.search_runs([exp], status="FINISHED")} == set(ids[:3])
    assert {r.run_id for r in store.search_runs([exp], status="running")} == set(ids[3:])
    both = store.search_runs([exp], status="RUNNING", params={"lr": "0.1", "q": "it's"})
    assert {r.run_id for r in both} == {ids[3], ids[5]}
    assert [r.run_id for r in store.search_runs([exp], max_results=2)] == ids[::-1][:2]
    assert len(store.search_runs([exp, other])) == 8
    assert store.search_runs([exp], params={"lr": "nope"}) == []
    assert store.search_runs([]) == []
    with pytest.raises(ExecutionException, match="Invalid run status"):
        store.search_runs([exp], status="DONE")
    infos = store.search_run_infos([exp], status="FINISHED")  # type: ignore[attr-defined]
    assert [i.run_id for i in infos] == ids[:3][::-1]


def test_artifacts_land_in_the_local_artifact_folder(store: TrackingStore, tmp_path: Path) -> None:
    info = store.create_run("0", run_name=None, tags={}, user_id="u")
    folder = store.local_artifact_dir(info.run_id)
    assert folder is not None and folder == tmp_path / "mlruns" / "0" / info.run_id / "artifacts"
    log = tmp_path / "output.log"
    log.write_text("line 1\n")
    store.log_artifact(info.run_id, log, "mlproj")
    assert (folder / "mlproj" / "output.log").read_text() == "line 1\n"
    run = store.get_run(info.run_id)
    assert read_artifact(store, run, "mlproj/output.log") == b"line 1\n"
    with pytest.raises(ExecutionException, match="Invalid artifact path"):
        store.log_artifact(info.run_id, log, "../escape")


def test_mlflow_reads_and_writes_the_same_runs(store: TrackingStore, both_stores: str) -> None:
    exp = store.create_experiment("interop")
    first = store.create_run(
        exp,
        run_name="first-run",
        tags={"mlflow.user": "alice", "mlflow.source.type": "PROJECT"},
        user_id="alice",
        start_time=1_795_000_000_000,
    )
    store.log_batch(
        first.run_id,
        params={"alpha": "0.5"},
        metrics=[
            Metric("loss", 0.9, 1_795_000_000_100, 0),
            Metric("loss", 0.4, 1_795_000_000_200, 1),
        ],
    )
    store.set_terminated(first.run_id, "FINISHED", end_time=1_795_000_000_900)
    second = store.create_run(
        exp, run_name=None, tags={}, user_id="bob", start_time=1_795_000_001_000
    )
    store.log_batch(second.run_id, params={"alpha": "0.9"})

    out = run_mlflow(
        """
        exp_id, first, second = sys.argv[1:4]
        client = MlflowClient()
        r = client.get_run(first)
        # MLflow logs into a run mlproj opened, as a project's own code does.
        with mlflow.start_run(run_id=second):
            mlflow.log_metric("acc", 0.75, step=3)
            mlflow.set_tag("from", "mlflow")
        print(json.dumps({
            "info": [r.info.status, r.info.run_name, r.info.start_time, r.info.end_time,
                     r.info.user_id, r.info.experiment_id, r.info.lifecycle_stage],
            "artifact_uri": r.info.artifact_uri,
            "params": r.data.params, "metrics": r.data.metrics,
            "tags": {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.log")},
            "history": sorted([m.step, m.value] for m in client.get_metric_history(first, "loss")),
            "filtered": [x.info.run_id for x in client.search_runs(
                [exp_id], filter_string="params.alpha = '0.9'")],
            "ordered": [x.info.run_id for x in client.search_runs(
                [exp_id], order_by=["start_time DESC"])],
            "experiment": client.get_experiment_by_name("interop").experiment_id,
        }))
        """,
        both_stores,
        exp,
        first.run_id,
        second.run_id,
    )
    assert out["info"] == [
        "FINISHED",
        "first-run",
        1_795_000_000_000,
        1_795_000_000_900,
        "alice",
        exp,
        "active",
    ]
    assert out["artifact_uri"] == first.artifact_uri
    assert out["params"] == {"alpha": "0.5"}
    assert out["metrics"] == {"loss": 0.4}
    assert out["tags"]["mlflow.runName"] == "first-run"
    assert out["tags"]["mlflow.source.type"] == "PROJECT"
    assert out["history"] == [[0, 0.9], [1, 0.4]]
    assert out["filtered"] == [second.run_id]
    assert out["ordered"] == [second.run_id, first.run_id]
    assert out["experiment"] == exp

    # ... and mlproj reads what MLflow wrote into its run.
    back = store.get_run(second.run_id)
    assert back.metrics == {"acc": 0.75} and back.tags["from"] == "mlflow"
    assert back.info.status == "FINISHED"  # MLflow's end_run closed it


def _many_runs(db: Path, count: int) -> list[str]:
    """``count`` FINISHED runs in experiment 0, each with its own ``mlproj.key`` tag, written
    as MLflow's rows in one transaction (through the store it would take minutes)."""
    import sqlite3
    import uuid

    from mlproj.tracking.sqlite_store import SqliteStore

    store = SqliteStore(f"sqlite:///{db}")
    store.create_run("0", run_name="first", tags={}, user_id="u")  # creates the database
    store.close()
    ids = [uuid.uuid4().hex for _ in range(count)]
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) "
            "VALUES (?, ?, 'UNKNOWN', '', '', 'u', 'FINISHED', ?, ?, '', 'active', '', 0)",
            [(run_id, f"r{n}", n, n + 1) for n, run_id in enumerate(ids)],
        )
        conn.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
            [(key, f"{key}-{n}", run_id) for n, run_id in enumerate(ids)
             for key in ("mlproj.key", "mlflow.runName", "mlflow.user")],
        )  # fmt: skip
    conn.close()
    return ids


@pytest.mark.timing
@pytest.mark.usefixtures("in_tmp_folder")
def test_the_reuse_lookup_is_indexed_among_10000_runs(tmp_path: Path) -> None:
    """SQLite only: `--reuse` and a sweep's resume find a run by its ``mlproj.key`` tag."""
    import sqlite3

    from mlproj.tracking.sqlite_store import SqliteStore

    db = tmp_path / "mlflow.db"
    ids = _many_runs(db, 10_000)
    store = SqliteStore(f"sqlite:///{db}")
    started = time.perf_counter()
    for n in (0, 4321, 9999):
        (found,) = store.find_runs_by_tag(
            ["0"], "mlproj.key", f"mlproj.key-{n}", status="FINISHED", max_results=1
        )
        assert found.run_id == ids[n] and found.tags["mlproj.key"] == f"mlproj.key-{n}"
    per_lookup = (time.perf_counter() - started) / 3
    assert per_lookup < 0.2, f"{per_lookup * 1000:.0f} ms per lookup among 10,000 runs"
    assert store.find_runs_by_tag(["0"], "mlproj.key", "no-such-key") == []
    # Indexed: SQLite searches runs and tags through their keys and scans neither table.
    query = store._search_query(["0"], "FINISHED", None, 1, {"mlproj.key": "x"})
    assert query is not None
    conn = sqlite3.connect(db)
    try:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query[0]}", query[1])]
    finally:
        conn.close()
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert any(step.startswith("SEARCH tags USING") for step in plan), plan
