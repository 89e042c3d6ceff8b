"""RestStore (against a real MLflow server) and SqliteStore (sqlite:///) behave the same, and
what they write is what the real MLflow client reads back."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlproj.errors import ExecutionException
from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Metric


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'mlflow.db'}"


@pytest.fixture(params=["rest", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_and_client(
    kind: str, mlflow_server: Any, sqlite_uri: str
) -> Iterator[tuple[TrackingStore, Any]]:
    uri = mlflow_server.url if kind == "rest" else sqlite_uri
    store = get_store(uri)
    assert type(store).__name__ == ("RestStore" if kind == "rest" else "SqliteStore")
    yield store, MlflowClient(tracking_uri=uri)


def _experiment(store: TrackingStore) -> str:
    return store.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")


def test_experiments_by_id_and_name(store_and_client: tuple[TrackingStore, Any]) -> None:
    store, client = store_and_client
    name = f"exp-{uuid.uuid4().hex[:8]}"
    assert store.get_experiment_by_name(name) is None
    exp_id = store.create_experiment(name)
    assert store.create_experiment(name) == exp_id  # existing name: same id, no error
    assert client.get_experiment(exp_id).name == name
    got = store.get_experiment(exp_id)
    assert got is not None and got.name == name and got.lifecycle_stage == "active"
    assert store.get_experiment_by_name(name) == got
    assert store.get_experiment("987654321") is None
    assert name in {e.name for e in store.list_experiments()}
    assert store.resolve_experiment(experiment_name=f"{name}-new") not in ("", exp_id)


def test_run_lifecycle_and_batches_beyond_server_limits(
    store_and_client: tuple[TrackingStore, Any],
) -> None:
    store, client = store_and_client
    exp_id = _experiment(store)
    info = store.create_run(
        exp_id, run_name="first", tags={"team": "a", "mlflow.user": "alice"}, user_id="alice"
    )
    assert info.status == "RUNNING" and info.run_name == "first" and info.end_time is None
    params = {f"p{i}": str(i) for i in range(250)}  # > 100 params per batch
    tags = {f"t{i}": "x" * 10 for i in range(150)}  # > 100 tags per batch
    metrics = [Metric("loss", 1.0 / (i + 1), 1_000 + i, i) for i in range(2_500)]  # > 1000
    metrics.append(Metric("odd", math.nan, 5, 0))
    store.log_batch(info.run_id, params=params, tags=tags, metrics=metrics)

    seen = client.get_run(info.run_id)
    assert seen.data.params == params
    assert {k: seen.data.tags[k] for k in tags} == tags
    assert seen.data.tags["team"] == "a"
    assert seen.data.metrics["loss"] == pytest.approx(1.0 / 2_500)
    assert math.isnan(seen.data.metrics["odd"])
    assert len(client.get_metric_history(info.run_id, "loss")) == 2_500

    history = store.get_metric_history(info.run_id, "loss")
    assert len(history) == 2_500
    assert sorted(m.step for m in history) == list(range(2_500))

    run = store.get_run(info.run_id)
    assert run.params == params and run.info.user_id == "alice"
    assert math.isnan(run.metrics["odd"])

    store.set_tag(info.run_id, "mlflow.runName", "renamed")
    assert store.get_run(info.run_id).info.run_name == "renamed"

    store.set_terminated(info.run_id, "KILLED", end_time=info.start_time + 1234)
    done = store.get_run(info.run_id)
    assert done.info.status == "KILLED" and done.info.end_time == info.start_time + 1234
    assert client.get_run(info.run_id).info.status == "KILLED"


def test_missing_run_is_a_clear_error(store_and_client: tuple[TrackingStore, Any]) -> None:
    store, _ = store_and_client
    with pytest.raises(
        ExecutionException, match="Run 'f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0' not found"
    ):
        store.get_run("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0")


def test_search_filters_order_and_paging(
    store_and_client: tuple[TrackingStore, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = store_and_client
    exp_id = _experiment(store)
    other = _experiment(store)
    now = int(time.time() * 1000)
    ids = []
    for i in range(7):
        info = store.create_run(
            exp_id, run_name=f"r{i}", tags={}, user_id="u", start_time=now + i * 1000
        )
        store.log_batch(info.run_id, params={"lr": "0.1" if i % 2 else "0.2", "q": "it's"})
        if i < 3:
            store.set_terminated(info.run_id, "FINISHED")
        ids.append(info.run_id)
    store.create_run(other, run_name="elsewhere", tags={}, user_id="u")

    everything = store.search_runs([exp_id])
    assert [r.run_id for r in everything] == ids[::-1]  # newest first
    assert {r.run_id for r in store.search_runs([exp_id], status="FINISHED")} == set(ids[:3])
    assert {r.run_id for r in store.search_runs([exp_id], status="RUNNING")} == set(ids[3:])
    odd = store.search_runs([exp_id], params={"lr": "0.1"})
    assert {r.run_id for r in odd} == {ids[1], ids[3], ids[5]}
    both = store.search_runs([exp_id], status="RUNNING", params={"lr": "0.1", "q": "it's"})
    assert {r.run_id for r in both} == {ids[3], ids[5]}
    assert len(store.search_runs([exp_id, other])) == 8
    assert store.search_runs([exp_id], params={"lr": "nope"}) == []

    # Paging: tiny pages must still give every run, in order, and honour max_results.
    import mlproj.tracking.mlflow_store as mlflow_store
    import mlproj.tracking.rest_store as rest_store

    monkeypatch.setattr(rest_store, "PAGE_SIZE", 2)
    monkeypatch.setattr(mlflow_store, "PAGE_SIZE", 2)
    assert [r.run_id for r in store.search_runs([exp_id])] == ids[::-1]
    assert [r.run_id for r in store.search_runs([exp_id], max_results=5)] == ids[::-1][:5]
    assert len(store.list_experiments()) >= 3


def test_output_log_artifact_is_visible_to_mlflow(
    store_and_client: tuple[TrackingStore, Any], tmp_path: Path
) -> None:
    from mlproj.tracking.artifacts import read_artifact

    store, client = store_and_client
    exp_id = _experiment(store)
    info = store.create_run(exp_id, run_name=None, tags={}, user_id="u")
    log = tmp_path / "output.log"
    log.write_text("line 1\nline 2\n")
    store.log_artifact(info.run_id, log, "mlproj")

    listed = [f.path for f in client.list_artifacts(info.run_id, "mlproj")]
    assert listed == ["mlproj/output.log"]
    local = client.download_artifacts(info.run_id, "mlproj/output.log", str(tmp_path / "dl"))
    assert Path(local).read_text() == "line 1\nline 2\n"

    run = store.get_run(info.run_id)
    assert read_artifact(store, run, "mlproj/output.log") == b"line 1\nline 2\n"
    assert read_artifact(store, run, "mlproj/missing.log") is None


def test_relative_sqlite_uri_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = get_store("sqlite:///rel.db")
    # Children start in the project folder: they must find the same database.
    assert store.tracking_uri == f"sqlite:///{tmp_path}/rel.db"
    assert store.get_experiment("0") is not None
    assert (tmp_path / "rel.db").is_file()


def test_sql_uri_without_mlflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import mlflow...` raise ImportError, as when it is not installed.
    import sys

    for name in ("mlflow", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ExecutionException) as caught:
        get_store("postgresql://user:pw@db/mlflow")
    message = str(caught.value)
    assert "pip install 'mlproj[mlflow]'" in message and "http(s)://" in message
    assert "\n" not in message and "pw" not in message
