"""Short run ids: a unique prefix stands for the run wherever a run id is read."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.run_ids import resolve_run_id
from tests.cli.cli_support import EXAMPLE, run_cli
from tests.shared_servers import MlflowServer

pytestmark = pytest.mark.usefixtures("tracking_store_kind")  # on both local stores


def _runs(store: TrackingStore, count: int, experiment: str = "ids") -> list[str]:
    experiment_id = store.resolve_experiment(experiment)
    return [
        store.create_run(experiment_id, run_name=f"r{i}", tags={}, user_id="me").run_id
        for i in range(count)
    ]


def _unique_and_shared_prefixes(ids: list[str]) -> tuple[str, str, list[str]]:
    """A prefix of ids[0] no other id has, and a one-character prefix shared by several ids."""
    length = next(n for n in range(1, 33) if sum(i.startswith(ids[0][:n]) for i in ids) == 1)
    shared = next(i[0] for i in ids if sum(j.startswith(i[0]) for j in ids) >= 2)
    return ids[0][:length], shared, sorted(i for i in ids if i.startswith(shared))


def _check_store(store: TrackingStore, ids: list[str], *, shared_store: bool = False) -> None:
    """``shared_store``: other tests' runs are there too (the session's MLflow server), so a
    prefix is made long enough to be theirs by no chance, and the candidates may be more."""
    unique, shared, candidates = _unique_and_shared_prefixes(ids)
    if shared_store:
        unique = ids[0][: max(len(unique), 12)]
    assert resolve_run_id(store, unique) == ids[0]
    assert resolve_run_id(store, unique.upper()) == ids[0]
    assert resolve_run_id(store, ids[1]) == ids[1]  # a full id as it is
    with pytest.raises(ExecutionException) as ambiguous:
        resolve_run_id(store, shared)
    message = str(ambiguous.value)
    assert "\n" not in message
    match = re.match(rf"Run id prefix '{shared}' is ambiguous: (\d+) runs match: (.*)$", message)
    assert match, message
    count, listed = int(match.group(1)), re.findall(r"\b[0-9a-f]{32}\b", match.group(2))
    assert listed and all(run_id.startswith(shared) for run_id in listed)
    assert message.endswith("; give more characters")
    if shared_store:
        assert count >= len(candidates)
    else:
        assert count == len(candidates) and listed == candidates[:8]
        assert "(r" in message  # candidates carry their run names
    with pytest.raises(ExecutionException, match="not found"):
        resolve_run_id(store, "f" * 16)  # no run id starts with 16 f's, by any chance


def test_prefixes_on_the_file_store(tmp_path: Path) -> None:
    store = get_store((tmp_path / "store").as_uri())
    _check_store(store, _runs(store, 40))


def test_prefixes_on_an_mlflow_server(mlflow_server: MlflowServer) -> None:
    """MLflow's search cannot filter by id prefix: the newest runs are matched, and the
    not-found error says so."""
    store = get_store(mlflow_server.url)
    ids = _runs(store, 40, experiment=f"ids-{os.getpid()}-{time.time_ns()}")
    _check_store(store, ids, shared_store=True)
    with pytest.raises(ExecutionException, match="newest 5000 runs"):
        resolve_run_id(store, "ffffffffffffffff")


def test_file_store_lookup_stays_fast_with_many_runs(tmp_path: Path) -> None:
    store = get_store((tmp_path / "store").as_uri())
    ids = _runs(store, 1500)
    started = time.perf_counter()
    for run_id in ids[:20]:
        assert resolve_run_id(store, run_id[:10]) == run_id
    per_lookup = (time.perf_counter() - started) / 20
    assert per_lookup < 0.1, f"{per_lookup * 1000:.0f} ms per lookup in 1500 runs"


def test_cli_commands_take_a_prefix(tmp_path: Path) -> None:
    done = run_cli("run", str(EXAMPLE), "--env-manager", "local", "-P", "alpha=0.3", "-q")
    assert done.returncode == 0, done.stderr
    store = get_store()
    (run,) = store.search_runs([e.experiment_id for e in store.list_experiments()])
    short = run.run_id[:8]
    shown = run_cli("runs", "show", short)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Run          {run.run_id} ")
    logs = run_cli("runs", "logs", short)
    assert logs.returncode == 0, logs.stderr
    assert "hello! training with alpha=0.3" in logs.stdout
    over = run_cli("runs", "cancel", short)
    assert over.stderr.strip() == f"mlproj: error: Run '{run.run_id}' is already FINISHED"
    missing = run_cli("runs", "show", "0000000")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"mlproj: error: Run '0000000' not found in tracking store {store.tracking_uri}"
    ]


def test_cancel_takes_a_prefix() -> None:
    started = run_cli("run", str(EXAMPLE), "-e", "sleep", "--env-manager", "local", "--no-wait")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip().splitlines()[-1]
    cancel = run_cli("runs", "cancel", run_id[:10])
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.strip() == f"Run {run_id}: KILLED"
    assert get_store().get_run(run_id).info.status == "KILLED"


def test_run_reenters_a_run_given_by_prefix() -> None:
    store = get_store()
    experiment_id = store.resolve_experiment("reenter")
    opened = store.create_run(experiment_id, run_name="opened", tags={}, user_id="me")
    done = run_cli(
        "run", str(EXAMPLE), "-e", "sleep", "-P", "seconds=0", "--env-manager", "local",
        "--run-id", opened.run_id[:12],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.get_run(opened.run_id).info.status == "FINISHED"
    assert [r.run_id for r in store.search_runs([experiment_id])] == [opened.run_id]  # no new run


def _tiny_project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: tiny\n"
        "entry_points:\n"
        "  main:\n"
        "    parameters: {x: {type: int, default: 1}}\n"
        '    command: "echo x={x}"\n'
        "pipelines:\n"
        "  only:\n"
        "    steps:\n"
        "      one: {entry_point: main, parameters: {x: 2}}\n"
    )
    return folder


def test_resume_commands_and_the_parent_filter_take_a_prefix(tmp_path: Path) -> None:
    project = _tiny_project(tmp_path / "tiny")
    swept = run_cli("sweep", str(project), "-P", "x=1,2", "--env-manager", "local", "-q")
    assert swept.returncode == 0, swept.stderr
    piped = run_cli("pipeline", "run", "-p", str(project), "--env-manager", "local", "-q")
    assert piped.returncode == 0, piped.stderr
    store = get_store()
    every = store.search_runs([e.experiment_id for e in store.list_experiments()])
    (sweep,) = [r.run_id for r in every if r.info.run_name.startswith("sweep-")]
    (pipeline,) = [r.run_id for r in every if r.info.run_name.startswith("pipeline-")]
    trials = sorted(r.run_id for r in every if r.info.run_name.startswith("trial-"))

    resumed = run_cli("sweep", "--resume", sweep[:10])
    assert resumed.returncode == 0, resumed.stderr
    assert f"mlproj: sweep {sweep} FINISHED" in resumed.stderr.splitlines()
    again = run_cli("pipeline", "resume", pipeline[:10])
    assert again.returncode == 0, again.stderr
    assert f"mlproj: pipeline {pipeline} FINISHED" in again.stderr.splitlines()
    children = run_cli("runs", "list", "--parent", sweep[:10])
    assert children.returncode == 0, children.stderr
    assert sorted(line.split()[0] for line in children.stdout.splitlines()[1:]) == trials

    for command in (("sweep", "--resume"), ("pipeline", "resume"), ("runs", "list", "--parent")):
        missing = run_cli(*command, "f" * 16)
        assert missing.returncode == 1, (command, missing.stderr)
        assert missing.stderr.strip().splitlines() == [
            f"mlproj: error: Run '{'f' * 16}' not found in tracking store {store.tracking_uri}"
        ], command


def test_cli_takes_a_prefix_on_an_mlflow_server(mlflow_server: MlflowServer) -> None:
    store = get_store(mlflow_server.url)
    (run_id,) = _runs(store, 1, experiment=f"cli-ids-{os.getpid()}-{time.time_ns()}")
    shown = run_cli("runs", "show", run_id[:12], "--tracking-uri", mlflow_server.url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Run          {run_id} (r0)")
    children = run_cli("runs", "list", "--parent", run_id[:12], "--tracking-uri", mlflow_server.url)
    assert children.returncode == 0, children.stderr  # no children, but the id was found
