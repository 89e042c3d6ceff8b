"""Load: 200 concurrent ``mlproj run --no-wait`` into one file store and into one MLflow server.

Every run must be recorded once, FINISHED, with its params and its output log. The figures
(wall time, peak memory of the ``mlproj run`` processes) are printed for the issue's note; the
benchmark ``benchmarks/bench_load.py`` measures the same with the supervisors included.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj.tracking import get_store
from mlproj.tracking.artifacts import read_artifact
from tests.shared_servers import MlflowServer

pytestmark = pytest.mark.slow

RUNS = 200
BATCH = 25  # clients started at once; the supervisors they detach all run together
MLPROJECT = """name: load
entry_points:
  main:
    parameters:
      index: {type: int}
    command: "echo line-{index}"
"""


def _start_all(project: Path, tracking_uri: str, env: dict[str, str]) -> list[str]:
    """Start RUNS detached runs, BATCH clients at a time; return the run ids they printed."""
    run_ids: list[str] = []
    for first in range(0, RUNS, BATCH):
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlproj",
                    "run",
                    str(project),
                    "--no-wait",
                    "--quiet",
                    "--tracking-uri",
                    tracking_uri,
                    "-P",
                    f"index={index}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for index in range(first, min(first + BATCH, RUNS))
        ]
        try:
            for client in clients:
                out, err = client.communicate(timeout=300)
                assert client.returncode == 0, err
                run_ids.append(out.strip().splitlines()[-1].split()[-1])
        finally:
            # On a failure, the batch's other clients are ended and their pipes closed, so
            # nothing leaks into the tests that run after this one.
            for client in clients:
                if client.returncode is None:
                    client.kill()
                client.communicate()
    return run_ids


def _wait_all_terminal(tracking_uri: str, run_ids: list[str], timeout: float = 600) -> None:
    store = get_store(tracking_uri)
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        pending = {r for r in pending if store.get_run_status(r) in ("RUNNING", "SCHEDULED")}
        time.sleep(0.5)
    assert not pending, f"{len(pending)} runs still running after {timeout:g} s"


def _check_runs(tracking_uri: str, run_ids: list[str]) -> None:
    store = get_store(tracking_uri)
    assert len(set(run_ids)) == RUNS
    recorded = store.search_runs([store.resolve_experiment()], max_results=10 * RUNS)
    assert sorted(r.run_id for r in recorded) == sorted(run_ids), "a run recorded twice or lost"
    seen_indexes = set()
    for run in recorded:
        assert run.info.status == "FINISHED", (run.run_id, run.tags.get("mlproj.error"))
        index = run.params["index"]
        seen_indexes.add(index)
        log = read_artifact(store, run, "mlproj/output.log")
        assert log is not None and f"line-{index}" in log.decode(), run.run_id
    assert seen_indexes == {str(i) for i in range(RUNS)}


def _report(kind: str, started: float) -> None:
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        f"\nload[{kind}]: {RUNS} detached runs recorded in {time.monotonic() - started:.1f} s; "
        f"peak RSS of one mlproj client {peak_kib / 1024:.0f} MiB"
    )


def test_200_concurrent_detached_runs_into_one_file_store(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    tracking_uri = (tmp_path / "mlruns").as_uri()
    started = time.monotonic()
    run_ids = _start_all(project, tracking_uri, dict(os.environ))
    _wait_all_terminal(tracking_uri, run_ids)
    _report("file store", started)
    _check_runs(tracking_uri, run_ids)


def test_200_concurrent_detached_runs_into_one_mlflow_server(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    workdir = tmp_path / "server"
    workdir.mkdir()
    # Its own server (not the session's shared one): the load must not slow other tests.
    server = MlflowServer(f"sqlite:///{workdir / 'mlflow.db'}", workdir)
    try:
        started = time.monotonic()
        run_ids = _start_all(project, server.url, dict(os.environ))
        _wait_all_terminal(server.url, run_ids)
        _report("MLflow server", started)
        _check_runs(server.url, run_ids)
    finally:
        server.stop()
