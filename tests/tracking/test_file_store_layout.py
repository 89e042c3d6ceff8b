"""FileStore: the on-disk layout it writes and what it reads back (no MLflow involved here)."""

from __future__ import annotations

import math
import os
import random
import re
import string
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from mlproj.errors import ExecutionException
from mlproj.tracking import get_store, meta_yaml
from mlproj.tracking.entities import Metric
from mlproj.tracking.file_store import FileStore
from mlproj.tracking.meta_yaml import dump_meta, parse_meta
from mlproj.tracking.run_names import MAX_RUN_NAME_LENGTH, random_run_name

RUN_META_KEYS = {
    "artifact_uri",
    "end_time",
    "entry_point_name",
    "experiment_id",
    "lifecycle_stage",
    "run_id",
    "run_name",
    "run_uuid",
    "source_name",
    "source_type",
    "source_version",
    "start_time",
    "status",
    "tags",
    "user_id",
}
EXPERIMENT_META_KEYS = {
    "artifact_location",
    "creation_time",
    "experiment_id",
    "last_update_time",
    "lifecycle_stage",
    "name",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "mlruns"


@pytest.fixture
def store(root: Path) -> FileStore:
    return FileStore(root.as_uri())


def _new_run(store: FileStore, experiment_id: str = "0", **kwargs: object) -> str:
    kwargs.setdefault("run_name", None)
    kwargs.setdefault("tags", {})
    kwargs.setdefault("user_id", "alice")
    return store.create_run(experiment_id, **kwargs).run_id  # type: ignore[arg-type]


# -- experiments ---------------------------------------------------------------------------------
def test_get_store_opens_a_file_store_for_paths_and_file_uris(root: Path) -> None:
    for uri in (str(root), root.as_uri()):
        store = get_store(uri)
        assert isinstance(store, FileStore)
        assert store.tracking_uri == root.as_uri()


def test_default_experiment_is_created_on_first_use(store: FileStore, root: Path) -> None:
    assert not root.exists()
    experiment = store.get_experiment("0")
    assert experiment is not None
    assert (experiment.experiment_id, experiment.name) == ("0", "Default")
    assert experiment.artifact_location == f"{root.as_uri()}/0"
    text = (root / "0" / "meta.yaml").read_text()
    meta = yaml.safe_load(text)
    assert set(meta) == EXPERIMENT_META_KEYS
    assert "experiment_id: '0'" in text.splitlines()  # a quoted string, as MLflow writes it
    assert meta["lifecycle_stage"] == "active"
    assert meta["creation_time"] == meta["last_update_time"] > 1_700_000_000_000


def test_create_run_into_default_on_a_fresh_root(store: FileStore, root: Path) -> None:
    run_id = _new_run(store, "0")
    assert (root / "0" / "meta.yaml").is_file()
    assert (root / "0" / run_id / "meta.yaml").is_file()


def test_create_experiment_default_gives_zero_and_resolve_uses_it(store: FileStore) -> None:
    assert store.create_experiment("Default") == "0"
    assert store.resolve_experiment() == "0"


def test_create_experiment_ids_and_idempotence(store: FileStore, root: Path) -> None:
    first = store.create_experiment("fraud model")
    assert re.fullmatch(r"[1-9][0-9]{17}", first)
    assert store.create_experiment("fraud model") == first
    second = store.create_experiment("churn")
    assert second != first
    found = store.get_experiment_by_name("fraud model")
    assert found is not None and found.experiment_id == first
    assert store.get_experiment_by_name("nope") is None
    assert {e.name for e in store.list_experiments()} == {"fraud model", "churn"}
    meta = yaml.safe_load((root / first / "meta.yaml").read_text())
    assert meta["name"] == "fraud model" and meta["experiment_id"] == first


def test_experiment_tags_are_read(store: FileStore, root: Path) -> None:
    experiment_id = store.create_experiment("tagged")
    (root / experiment_id / "tags" / "team").mkdir(parents=True)
    (root / experiment_id / "tags" / "team" / "name").write_text("risk")
    experiment = store.get_experiment(experiment_id)
    assert experiment is not None and experiment.tags == {"team/name": "risk"}


def test_deleted_experiment_is_reported_not_reused(store: FileStore, root: Path) -> None:
    experiment_id = store.create_experiment("old")
    meta_path = root / experiment_id / "meta.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["lifecycle_stage"] = "deleted"
    meta_path.write_text(yaml.safe_dump(meta))
    (root / ".trash").mkdir()
    (root / experiment_id).rename(root / ".trash" / experiment_id)

    found = store.get_experiment(experiment_id)
    assert found is not None and found.lifecycle_stage == "deleted"
    assert store.list_experiments() == []
    with pytest.raises(ExecutionException, match="'old' .* is deleted"):
        store.create_experiment("old")
    with pytest.raises(ExecutionException, match="deleted"):
        _new_run(store, experiment_id)


# -- runs ----------------------------------------------------------------------------------------
def test_run_layout_matches_mlflow(store: FileStore, root: Path) -> None:
    experiment_id = store.create_experiment("layout")
    info = store.create_run(
        experiment_id,
        run_name="first",
        tags={"mlflow.user": "alice", "nested/key": "deep"},
        user_id="alice",
        start_time=1_795_000_000_123,
    )
    run_dir = root / experiment_id / info.run_id
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
    for sub in ("params", "metrics", "tags", "artifacts"):
        assert (run_dir / sub).is_dir()
    meta = yaml.safe_load((run_dir / "meta.yaml").read_text())
    assert set(meta) == RUN_META_KEYS
    assert meta == {
        "artifact_uri": f"{root.as_uri()}/{experiment_id}/{info.run_id}/artifacts",
        "end_time": None,
        "entry_point_name": "",
        "experiment_id": experiment_id,
        "lifecycle_stage": "active",
        "run_id": info.run_id,
        "run_name": "first",
        "run_uuid": info.run_id,
        "source_name": "",
        "source_type": 4,
        "source_version": "",
        "start_time": 1_795_000_000_123,
        "status": 1,
        "tags": [],
        "user_id": "alice",
    }
    assert (run_dir / "tags" / "nested" / "key").read_bytes() == b"deep"
    assert (run_dir / "tags" / "mlflow.runName").read_bytes() == b"first"
    # Nothing but the run's own entries: no temporary files or staging folders left behind.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "artifacts",
        "meta.yaml",
        "metrics",
        "params",
        "tags",
    ]
    assert sorted(p.name for p in (root / experiment_id).iterdir()) == sorted(
        ["meta.yaml", info.run_id]
    )

    store.log_batch(info.run_id, params={"alpha": "0.5", "data/path": "/x y"}, tags={"t": "v"})
    assert (run_dir / "params" / "alpha").read_bytes() == b"0.5"
    assert (run_dir / "params" / "data" / "path").read_bytes() == b"/x y"
    assert not list(run_dir.rglob(".tmp-*"))

    run = store.get_run(info.run_id)
    assert run.info == info
    assert run.params == {"alpha": "0.5", "data/path": "/x y"}
    assert run.tags == {
        "mlflow.user": "alice",
        "nested/key": "deep",
        "mlflow.runName": "first",
        "t": "v",
    }


def test_random_run_names(store: FileStore, root: Path) -> None:
    info = store.create_run("0", run_name=None, tags={}, user_id="u")
    assert re.fullmatch(r"[a-z]+-[a-z]+-[0-9]{1,3}", info.run_name)
    assert (root / "0" / info.run_id / "tags" / "mlflow.runName").read_text() == info.run_name
    rng = random.Random(7)
    for names in (
        [random_run_name(rng) for _ in range(3000)],
        [random_run_name() for _ in range(3000)],
    ):
        assert all(len(n) <= MAX_RUN_NAME_LENGTH for n in names)
        assert all(re.fullmatch(r"[a-z]+-[a-z]+-[0-9]{1,3}", n) for n in names)
        assert len(set(names)) > 2500


def test_run_name_from_tag_and_renaming(store: FileStore, root: Path) -> None:
    info = store.create_run("0", run_name=None, tags={"mlflow.runName": "tagged"}, user_id="u")
    assert info.run_name == "tagged"
    store.set_tag(info.run_id, "mlflow.runName", "renamed: it's new")
    meta = yaml.safe_load((root / "0" / info.run_id / "meta.yaml").read_text())
    assert meta["run_name"] == "renamed: it's new"
    run = store.get_run(info.run_id)
    assert run.info.run_name == run.tags["mlflow.runName"] == "renamed: it's new"


def test_params_are_immutable(store: FileStore) -> None:
    run_id = _new_run(store)
    store.log_batch(run_id, params={"alpha": "0.1"})
    store.log_batch(run_id, params={"alpha": "0.1"})  # the same value again is fine
    with pytest.raises(ExecutionException) as info:
        store.log_batch(run_id, params={"beta": "1", "alpha": "0.2"})
    message = str(info.value)
    assert "'alpha'" in message and "'0.1'" in message and "'0.2'" in message
    # The batch was refused as a whole: 'beta' was not written.
    assert store.get_run(run_id).params == {"alpha": "0.1"}


def test_metrics_lines_latest_and_history(store: FileStore, root: Path) -> None:
    run_id = _new_run(store)
    store.log_batch(
        run_id,
        metrics=[
            Metric("loss", 0.9, 1000, 0),
            Metric("loss", 0.5, 1001, 2),
            Metric("loss", 0.7, 1002, 1),  # logged later, but an earlier step
            Metric("a/b", float("nan"), 5, 0),
            Metric("inf", float("inf"), 6, 3),
        ],
    )
    store.log_batch(run_id, metrics=[Metric("loss", 0.4, 999, 2)])  # same step, older time
    text = (root / "0" / run_id / "metrics" / "loss").read_text()
    assert text == "1000 0.9 0\n1001 0.5 2\n1002 0.7 1\n999 0.4 2\n"
    assert (root / "0" / run_id / "metrics" / "a" / "b").read_text() == "5 nan 0\n"
    metrics = store.get_run(run_id).metrics
    assert metrics["loss"] == 0.5  # max by (step, timestamp, value)
    assert math.isnan(metrics["a/b"]) and metrics["inf"] == math.inf
    history = store.get_metric_history(run_id, "loss")
    assert [(m.value, m.timestamp, m.step) for m in history] == [
        (0.9, 1000, 0),
        (0.5, 1001, 2),
        (0.7, 1002, 1),
        (0.4, 999, 2),
    ]
    assert store.get_metric_history(run_id, "never") == []


def test_metric_lines_with_two_three_and_five_fields(store: FileStore, root: Path) -> None:
    run_id = _new_run(store)
    path = root / "0" / run_id / "metrics" / "acc"
    path.write_text("10 0.1\n20 0.2 4 train abc123\n15 0.3 2\nbroken line here now x\n\n")
    history = store.get_metric_history(run_id, "acc")
    assert [(m.timestamp, m.value, m.step) for m in history] == [
        (10, 0.1, 0),
        (20, 0.2, 4),
        (15, 0.3, 2),
    ]
    assert store.get_run(run_id).metrics == {"acc": 0.2}


def test_set_terminated_writes_status_and_end_time(store: FileStore, root: Path) -> None:
    run_id = _new_run(store)
    store.set_terminated(run_id, "FAILED", end_time=1_795_000_000_999)
    meta = yaml.safe_load((root / "0" / run_id / "meta.yaml").read_text())
    assert (meta["status"], meta["end_time"]) == (4, 1_795_000_000_999)
    run = store.get_run(run_id)
    assert (run.info.status, run.info.end_time) == ("FAILED", 1_795_000_000_999)
    store.set_terminated(run_id, "finished")
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None and run.info.end_time > 1_795_000_000_999


def test_unknown_run_is_a_clear_error(store: FileStore, root: Path) -> None:
    store.get_experiment("0")
    for run_id in ("0" * 32, "../0", "a/b", ""):
        with pytest.raises(ExecutionException) as info:
            store.get_run(run_id)
        assert str(info.value) == f"Run '{run_id}' not found in tracking store {root.as_uri()}"
    with pytest.raises(ExecutionException, match="not found"):
        store.log_batch("f" * 32, params={"a": "1"})
    with pytest.raises(ExecutionException, match="not found"):
        store.set_terminated("f" * 32, "FINISHED")


def test_search_runs_order_filters_and_limit(store: FileStore) -> None:
    other = store.create_experiment("other")
    ids = []
    for i in range(6):
        info = store.create_run(
            "0", run_name=f"r{i}", tags={}, user_id="u", start_time=1_795_000_000_000 + i
        )
        store.log_batch(info.run_id, params={"alpha": str(i % 2), "fixed": "x"})
        ids.append(info.run_id)
    store.set_terminated(ids[1], "FINISHED")
    store.set_terminated(ids[4], "FINISHED")
    other_run = _new_run(store, other)

    runs = store.search_runs(["0"])
    assert [r.run_id for r in runs] == ids[::-1]  # newest first
    assert runs[0].params == {"alpha": "1", "fixed": "x"}
    assert runs[0].tags["mlflow.runName"] == "r5"
    assert [r.run_id for r in store.search_runs(["0"], status="FINISHED")] == [ids[4], ids[1]]
    assert [r.run_id for r in store.search_runs(["0"], status="running")] == [
        ids[5],
        ids[3],
        ids[2],
        ids[0],
    ]
    assert [r.run_id for r in store.search_runs(["0"], params={"alpha": "0"})] == [
        ids[4],
        ids[2],
        ids[0],
    ]
    assert [r.run_id for r in store.search_runs(["0"], params={"alpha": "0", "fixed": "y"})] == []
    assert [r.run_id for r in store.search_runs(["0"], max_results=2)] == [ids[5], ids[4]]
    assert [r.run_id for r in store.search_runs(["0"], params={"alpha": "1"}, max_results=2)] == [
        ids[5],
        ids[3],
    ]
    both = store.search_runs(["0", other, "0", "123456"])
    assert len(both) == 7 and other_run in {r.run_id for r in both}
    assert store.search_runs([]) == []

    # The meta.yaml-only variant `mlproj runs list` uses: same runs, same order, same infos.
    assert store.search_run_infos(["0"]) == [r.info for r in runs]
    assert [i.run_id for i in store.search_run_infos(["0"], status="FINISHED")] == [
        ids[4],
        ids[1],
    ]
    assert [i.run_id for i in store.search_run_infos(["0", other], max_results=1)] == [other_run]


def test_search_skips_non_runs_and_uses_the_fast_parser(
    store: FileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _new_run(store)
    (root / "0" / "not-a-run").mkdir()  # e.g. an artifact folder kept beside the runs
    (root / "0" / "datasets").mkdir()
    (root / "0" / "notes.txt").write_text("hello")

    def no_yaml(text: str) -> dict[str, object]:
        raise AssertionError("flat meta.yaml files must not need PyYAML")

    monkeypatch.setattr(meta_yaml, "_parse_meta_yaml", no_yaml)
    assert [r.run_id for r in store.search_runs(["0"])] == [run_id]
    assert store.get_run(run_id).info.status == "RUNNING"


def test_reads_meta_yaml_in_unusual_forms(store: FileStore, root: Path) -> None:
    """Legacy and hand-edited records: int experiment ids, no run_name, folded long values."""
    store.get_experiment("0")
    run_dir = root / "0" / ("a" * 32)
    for sub in ("params", "metrics", "tags", "artifacts"):
        (run_dir / sub).mkdir(parents=True)
    (run_dir / "tags" / "mlflow.runName").write_text("from-the-tag")
    (run_dir / "meta.yaml").write_text(
        "# written by hand\n"
        "artifact_uri: /legacy/path/artifacts\n"
        "end_time: 1795000000999\n"
        "experiment_id: 0\n"
        "lifecycle_stage: active\n"
        f"run_id: {'a' * 32}\n"
        f"run_uuid: {'a' * 32}\n"
        "start_time: 1795000000000\n"
        "status: 5\n"
        "tags:\n"
        "- old\n"
        "user_id: bob\n"
    )
    run = store.get_run("a" * 32)
    assert run.info.run_name == "from-the-tag"
    assert (run.info.status, run.info.user_id, run.info.end_time) == (
        "KILLED",
        "bob",
        1795000000999,
    )
    assert store.local_artifact_dir("a" * 32) == Path("/legacy/path/artifacts")
    assert [r.run_id for r in store.search_runs(["0"], status="KILLED")] == ["a" * 32]

    long_name = "a long run name with spaces " * 6
    store.set_tag("a" * 32, "mlflow.runName", long_name)
    meta_text = (run_dir / "meta.yaml").read_text()
    assert yaml.safe_load(meta_text)["run_name"] == long_name
    assert yaml.safe_load(meta_text)["tags"] == ["old"]  # unknown content is kept
    # A folded value, as PyYAML writes long strings: read through the YAML fallback.
    (run_dir / "meta.yaml").write_text(yaml.safe_dump(yaml.safe_load(meta_text), width=40))
    assert store.get_run("a" * 32).info.run_name == long_name


def test_meta_writer_and_reader_agree_with_pyyaml() -> None:
    tricky = [
        "", "a", "0", "123", "-5", "007", "1.5", "1e5", ".inf", "true", "No", "null", "~", "a b",
        "it's", "a: b", "#x", "x #y", "file:///a b/c", "file:///abs/m/0", "é ü", "line\nbreak",
        "tab\there", "-x", "- x", "[]", "{a}", "'q'", '"dq"', "2001-12-14", "1:20", "0x1F",
        "  lead", "trail  ", "a:", ":a", "@x", "%x", "!x", "&a", "*a", "|", ">", "?x", "=",
        "\u2028", "\x85", "emoji😀", "back\\slash", "5427fb3452ab428ca92dbdef06a5bdab", "12e45",
        "0b1", "0o17", "9ab", "1_0", "5 a", "0", "-0", "+1",
    ]  # fmt: skip
    rng = random.Random(3)
    alphabet = string.printable + "éü'\":#- "
    tricky += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(500)]
    for value in tricky:
        meta = {"name": value, "experiment_id": value, "n": 12, "none": None, "tags": []}
        text = dump_meta(meta).decode("utf-8")
        assert yaml.safe_load(text) == meta, repr(value)
        assert parse_meta(text) == meta, repr(value)
        for width in (20, 80):
            written = yaml.safe_dump(meta, default_flow_style=False, width=width)
            assert parse_meta(written) == yaml.safe_load(written), repr(value)


# -- artifacts -----------------------------------------------------------------------------------
def test_log_artifact_and_local_artifact_dir(store: FileStore, root: Path, tmp_path: Path) -> None:
    run_id = _new_run(store)
    artifacts = store.local_artifact_dir(run_id)
    assert artifacts == root / "0" / run_id / "artifacts"
    source = tmp_path / "output.log"
    source.write_text("hello\n")
    store.log_artifact(run_id, source)
    store.log_artifact(run_id, source, "mlproj")
    store.log_artifact(run_id, source, "deep/er/")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.png").write_bytes(b"png")
    store.log_artifact(run_id, folder, "figs")
    assert (artifacts / "output.log").read_text() == "hello\n"
    assert (artifacts / "mlproj" / "output.log").read_text() == "hello\n"
    assert (artifacts / "deep" / "er" / "output.log").is_file()
    assert (artifacts / "figs" / "plots" / "sub" / "a.png").read_bytes() == b"png"
    assert not list(artifacts.rglob(".tmp-*"))


def test_log_artifact_errors(store: FileStore, tmp_path: Path) -> None:
    run_id = _new_run(store)
    with pytest.raises(ExecutionException, match="no such file"):
        store.log_artifact(run_id, tmp_path / "missing.txt")
    source = tmp_path / "f.txt"
    source.write_text("x")
    for bad in ("../escape", "/abs", "a/../../b"):
        with pytest.raises(ExecutionException, match="Invalid artifact path"):
            store.log_artifact(run_id, source, bad)


def test_rewrite_waits_out_a_half_written_meta(store: FileStore, root: Path) -> None:
    """MLflow rewrites meta.yaml in place; a status change must not keep a truncated copy."""
    run_id = _new_run(store, run_name="keep-me")
    meta_path = root / "0" / run_id / "meta.yaml"
    whole = meta_path.read_text()
    meta_path.write_text(whole.split("run_name")[0])  # cut short, as mid-write
    restore = threading.Timer(0.03, lambda: meta_path.write_text(whole))
    restore.start()
    store.set_terminated(run_id, "FINISHED")
    restore.join()
    meta = yaml.safe_load(meta_path.read_text())
    assert (meta["status"], meta["run_name"], meta["user_id"]) == (3, "keep-me", "alice")

    meta_path.write_text("")
    with pytest.raises(ExecutionException, match=r"meta.yaml is empty or not valid YAML"):
        store.get_run(run_id)


def test_store_path_with_spaces_and_unicode(tmp_path: Path) -> None:
    root = tmp_path / "my runs é" / "mlruns"
    store = get_store(str(root))
    assert isinstance(store, FileStore) and "%20" in store.tracking_uri
    run_id = _new_run(store)
    artifacts = store.local_artifact_dir(run_id)
    assert artifacts == root / "0" / run_id / "artifacts" and artifacts.is_dir()
    source = tmp_path / "out.txt"
    source.write_text("x")
    store.log_artifact(run_id, source)
    assert (artifacts / "out.txt").read_text() == "x"
    assert store.get_run(run_id).info.artifact_uri == f"{root.as_uri()}/0/{run_id}/artifacts"


def test_hot_path_needs_no_yaml_and_imports_nothing_heavy(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_run + log_batch + set_terminated run on every `mlproj run`: keep them lean."""
    code = (
        "import sys, mlproj.tracking.file_store; "
        "print(sorted(m for m in ('yaml', 'filelock', 'uuid', 'mlflow') if m in sys.modules))"
    )
    # Without coverage's subprocess hook: its tracer imports modules (uuid) of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "[]"

    store.get_experiment("0")  # creating an experiment uses filelock, once per store

    def no_yaml(*args: object, **kwargs: object) -> object:
        raise AssertionError("the run hot path must not need PyYAML")

    monkeypatch.setattr(meta_yaml, "_parse_meta_yaml", no_yaml)
    monkeypatch.setattr(yaml, "safe_dump", no_yaml)
    info = store.create_run("0", run_name=None, tags={"mlflow.user": "u"}, user_id="u")
    store.log_batch(info.run_id, params={"a": "1"}, metrics=[Metric("m", 1.0, 1, 0)])
    store.set_tag(info.run_id, "mlflow.runName", "renamed")
    store.set_terminated(info.run_id, "FINISHED")
    assert store.get_run(info.run_id).info.status == "FINISHED"


def test_get_run_status_reads_the_status_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlproj.tracking.file_store import FileStore

    store = FileStore((tmp_path / "store").as_uri())
    info = store.create_run(store.resolve_experiment(), run_name=None, tags={}, user_id="u")
    assert store.get_run_status(info.run_id) == "RUNNING"
    store.set_terminated(info.run_id, "KILLED")
    assert store.get_run_status(info.run_id) == "KILLED" == store.get_run(info.run_id).info.status
