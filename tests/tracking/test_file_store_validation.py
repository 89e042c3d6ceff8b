"""FileStore: every input it refuses, and that each refusal names what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking.entities import Metric
from mlproj.tracking.file_store import FileStore


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore((tmp_path / "mlruns").as_uri())


@pytest.fixture
def run_id(store: FileStore) -> str:
    return store.create_run("0", run_name="r", tags={}, user_id="u").run_id


BAD_KEYS = {
    "": "non-empty",
    "semi;colon": "may contain only",
    "quote'd": "may contain only",
    "new\nline": "may contain only",
    "a/../b": "normalised relative path",
    "/abs": "normalised relative path",
    "trailing/": "normalised relative path",
    "a//b": "normalised relative path",
    "./a": "normalised relative path",
    "..": "normalised relative path",
    ".": "normalised relative path",
    "k" * 251: "limit is 250",
}


@pytest.mark.parametrize("key", list(BAD_KEYS))
def test_bad_param_tag_and_metric_keys(store: FileStore, run_id: str, key: str) -> None:
    for kind, call in (
        ("param", lambda: store.log_batch(run_id, params={key: "1"})),
        ("tag", lambda: store.log_batch(run_id, tags={key: "1"})),
        ("metric", lambda: store.log_batch(run_id, metrics=[Metric(key, 1.0, 1, 0)])),
        ("metric", lambda: store.get_metric_history(run_id, key)),
        ("tag", lambda: store.create_run("0", run_name=None, tags={key: "v"}, user_id="u")),
    ):
        with pytest.raises(ExecutionException) as info:
            call()
        message = str(info.value)
        assert f"Invalid {kind} key" in message and BAD_KEYS[key] in message
        assert key[:60].replace("\n", "\\n") in message
    run = store.get_run(run_id)
    assert run.params == {} and set(run.tags) == {"mlflow.runName"} and run.metrics == {}


def test_good_keys_at_the_limits(store: FileStore, run_id: str) -> None:
    keys = ["k" * 250, "with space", "a:b", "dots.and-dash_es", "deep/er/key", "ünïcode"]
    store.log_batch(run_id, params=dict.fromkeys(keys, "1"), tags=dict.fromkeys(keys, "2"))
    run = store.get_run(run_id)
    assert set(keys) <= set(run.params) and set(keys) <= set(run.tags)


def test_value_lengths(store: FileStore, run_id: str) -> None:
    store.log_batch(run_id, params={"p": "x" * 6000}, tags={"t": "y" * 8000})
    with pytest.raises(ExecutionException, match=r"param 'p2' is 6001 characters.*limit is 6000"):
        store.log_batch(run_id, params={"p2": "x" * 6001})
    with pytest.raises(ExecutionException, match=r"tag 't2' is 8001 characters.*limit is 8000"):
        store.log_batch(run_id, tags={"t2": "y" * 8001})
    with pytest.raises(ExecutionException, match=r"tag 'mlflow.runName' is 8001"):
        store.create_run("0", run_name="n" * 8001, tags={}, user_id="u")
    run = store.get_run(run_id)
    assert len(run.params["p"]) == 6000 and len(run.tags["t"]) == 8000
    assert "p2" not in run.params and "t2" not in run.tags


def test_param_conflict_message(store: FileStore, run_id: str) -> None:
    store.log_batch(run_id, params={"lr": "0.1"})
    with pytest.raises(ExecutionException) as info:
        store.log_batch(run_id, params={"lr": "0.2"})
    assert str(info.value).startswith(
        f"Param 'lr' of run '{run_id}' was already logged with value '0.1'; it cannot change "
        "to '0.2' (params are immutable)."
    )


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        (Metric("m", "1.0", 1, 0), "Invalid value '1.0' for metric 'm'"),  # type: ignore[arg-type]
        (Metric("m", True, 1, 0), "Invalid value True for metric 'm'"),
        (Metric("m", 1.0, 1.5, 0), "Invalid timestamp 1.5 for metric 'm'"),  # type: ignore[arg-type]
        (Metric("m", 1.0, 1, "2"), "Invalid step '2' for metric 'm'"),  # type: ignore[arg-type]
    ],
)
def test_bad_metric_values(store: FileStore, run_id: str, metric: Metric, expected: str) -> None:
    with pytest.raises(ExecutionException, match=expected):
        store.log_batch(run_id, metrics=[Metric("ok", 1.0, 1, 0), metric])
    assert store.get_run(run_id).metrics == {}  # nothing of the refused batch was written


def test_key_that_is_also_a_folder(store: FileStore, run_id: str) -> None:
    with pytest.raises(ExecutionException, match="is both a key and the folder"):
        store.create_run("0", run_name=None, tags={"a": "1", "a/b": "2"}, user_id="u")
    assert [r.run_id for r in store.search_runs(["0"])] == [run_id]  # no half-made run
    store.log_batch(run_id, tags={"a/b": "1"}, params={"p/q": "1"})
    with pytest.raises(ExecutionException, match=r"params/p is both a key and the folder"):
        store.log_batch(run_id, params={"p": "2"})
    with pytest.raises(ExecutionException, match=r"is both a key and the folder.*'a' and 'a/b'"):
        store.log_batch(run_id, tags={"a": "2"})


def test_bad_experiments(store: FileStore) -> None:
    for name in ("", "   "):
        with pytest.raises(ExecutionException, match="Invalid experiment name"):
            store.create_experiment(name)
    with pytest.raises(ExecutionException) as info:
        store.create_run("424242", run_name=None, tags={}, user_id="u")
    assert "experiment '424242'" in str(info.value) and store.tracking_uri in str(info.value)
    assert store.get_experiment("424242") is None
    assert store.get_experiment("../etc") is None
    with pytest.raises(ExecutionException, match="Experiment with id '424242' does not exist"):
        store.resolve_experiment(experiment_id="424242")


def test_bad_statuses(store: FileStore, run_id: str) -> None:
    with pytest.raises(ExecutionException, match=r"Invalid final status 'RUNNING'.*FAILED"):
        store.set_terminated(run_id, "RUNNING")
    with pytest.raises(ExecutionException, match=r"Invalid run status 'DONE'"):
        store.search_runs(["0"], status="DONE")
    assert store.get_run(run_id).info.status == "RUNNING"


def test_run_name_and_tag_must_agree(store: FileStore) -> None:
    with pytest.raises(ExecutionException, match="'a' and tag mlflow.runName='b' disagree"):
        store.create_run("0", run_name="a", tags={"mlflow.runName": "b"}, user_id="u")


def test_search_param_key_is_validated(store: FileStore) -> None:
    with pytest.raises(ExecutionException, match="Invalid param key '../x'"):
        store.search_runs(["0"], params={"../x": "1"})


def test_non_file_uri_is_refused() -> None:
    with pytest.raises(ExecutionException, match="not a file store URI"):
        FileStore("http://localhost:5000")
