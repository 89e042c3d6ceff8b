"""Whole ``mlproj run`` processes: logging into a real MLflow server, cancel from another
process, and a supervisor killed with SIGKILL found orphaned and reaped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

MLPROJECT = """
name: lifecycle
entry_points:
  main:
    command: "python train.py"
  sleep:
    command: "bash sleeper.sh"
"""
TRAIN = """
import mlflow
print("hello from the project", flush=True)
mlflow.log_metric("score", 0.75)
"""
SLEEPER = """
echo $$ >> pids
sleep 300 & echo $! >> pids
echo started
wait
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for name, text in (("MLproject", MLPROJECT), ("train.py", TRAIN), ("sleeper.sh", SLEEPER)):
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def mlproj_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


@pytest.fixture
def started_sleeper(project: Path) -> Iterator[Callable[[], tuple[subprocess.Popen[bytes], Run]]]:
    """Start ``mlproj run -e sleep`` in the background; returns (process, RUNNING run)."""
    started: list[subprocess.Popen[bytes]] = []
    pids_file = project / "pids"

    def start() -> tuple[subprocess.Popen[bytes], Run]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "run", str(project), "-e", "sleep", "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(proc)
        store = get_store()
        found: list[Run] = []

        def running() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mlproj run exited early with {proc.returncode}")
            if not (pids_file.exists() and len(pids_file.read_text().split()) >= 2):
                return False
            runs = _all_runs(store)
            found[:] = [r for r in runs if "mlproj.supervisor.pid" in r.tags]
            return bool(found)

        _wait_for(running)
        return proc, found[0]

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if pids_file.exists():
        for pid in map(int, pids_file.read_text().split()):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _all_runs(store: TrackingStore) -> list[Run]:
    return store.search_runs([e.experiment_id for e in store.list_experiments()])


def test_cancel_from_another_process_kills_the_tree(
    started_sleeper: Callable[[], tuple[subprocess.Popen[bytes], Run]], project: Path
) -> None:
    proc, run = started_sleeper()
    pids = [int(p) for p in (project / "pids").read_text().split()]
    assert all(_alive(p) for p in pids)

    done = mlproj_cli("runs", "cancel", run.run_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Run {run.run_id}: KILLED"
    assert get_store().get_run(run.run_id).info.status == "KILLED"
    proc.wait(timeout=30)
    _wait_for(lambda: not any(_alive(p) for p in pids), timeout=15)

    again = mlproj_cli("runs", "cancel", run.run_id)
    assert again.returncode == 1 and "already KILLED" in again.stderr


def test_sigkilled_supervisor_is_orphaned_then_reaped(
    started_sleeper: Callable[[], tuple[subprocess.Popen[bytes], Run]],
) -> None:
    proc, run = started_sleeper()
    supervisor = int(run.tags["mlproj.supervisor.pid"])
    assert _alive(supervisor)
    os.kill(supervisor, signal.SIGKILL)
    if supervisor == proc.pid:
        proc.wait(timeout=15)  # collect the zombie, as the user's shell would
    _wait_for(lambda: not _alive(supervisor), timeout=15)

    orphans = json.loads(mlproj_cli("runs", "list", "--json", "--status", "orphaned").stdout)
    assert [(r["run_id"], r["status"]) for r in orphans] == [(run.run_id, "RUNNING")]
    # Cancelling it settles it: its command stopped, the run FAILED, saying why.
    done = mlproj_cli("runs", "cancel", run.run_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Run {run.run_id}: FAILED"
    assert "was left RUNNING by an mlproj process that is gone" in done.stderr
    shown = mlproj_cli("runs", "show", run.run_id)
    assert shown.returncode == 0, shown.stderr
    assert "FAILED" in shown.stdout and "(orphaned)" not in shown.stdout
    reaped = get_store().get_run(run.run_id)
    assert reaped.info.status == "FAILED" and reaped.info.end_time is not None
    assert "supervisor" in reaped.tags["mlproj.error"]
    assert mlproj_cli("runs", "reap").stdout.strip() == "No orphaned runs."


def test_project_logging_lands_in_the_same_run_on_a_server(
    project: Path, mlflow_server: Any, tmp_path: Path
) -> None:
    experiment = f"e2e-{uuid.uuid4().hex[:8]}"
    done = mlproj_cli(
        "run", str(project), "--tracking-uri", mlflow_server.url, "--experiment-name", experiment
    )
    assert done.returncode == 0, done.stderr
    assert "hello from the project" in done.stdout

    store = get_store(mlflow_server.url)
    exp = store.get_experiment_by_name(experiment)
    assert exp is not None
    (run,) = store.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.metrics == {"score": 0.75}  # logged by the project's own mlflow call
    assert run.tags["mlflow.source.type"] == "PROJECT"

    client = MlflowClient(tracking_uri=mlflow_server.url)
    assert [a.path for a in client.list_artifacts(run.run_id, "mlproj")] == ["mlproj/output.log"]
    log = client.download_artifacts(run.run_id, "mlproj/output.log", str(tmp_path / "dl"))
    assert "hello from the project" in Path(log).read_text()
    shown = mlproj_cli("runs", "logs", run.run_id, "--tracking-uri", mlflow_server.url)
    assert "hello from the project" in shown.stdout


def test_project_logging_lands_in_the_same_run_in_sqlite(project: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "--tracking-uri", uri],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,  # MLflow puts a SQL store's default artifact root under the cwd
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(["0"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"score": 0.75}
    assert run.data.tags["mlflow.source.type"] == "PROJECT"
    log = client.download_artifacts(run.info.run_id, "mlproj/output.log", str(tmp_path / "dl"))
    assert "hello from the project" in Path(log).read_text()
    shown = mlproj_cli("runs", "show", run.info.run_id, "--tracking-uri", uri, "--json")
    assert json.loads(shown.stdout)["metrics"] == {"score": 0.75}


def test_cancel_an_asynchronous_run(project: Path) -> None:
    done = mlproj_cli("run", str(project), "-e", "sleep", "--no-wait", "-q")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    store = get_store()
    pids_file = project / "pids"
    supervisor = 0
    try:
        _wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) >= 2)
        run = store.get_run(run_id)
        supervisor = int(run.tags["mlproj.supervisor.pid"])
        listed = json.loads(mlproj_cli("runs", "list", "--json", "--status", "RUNNING").stdout)
        assert [(r["run_id"], r["orphaned"]) for r in listed] == [(run_id, False)]

        cancelled = mlproj_cli("runs", "cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert store.get_run(run_id).info.status == "KILLED"
        pids = [int(p) for p in pids_file.read_text().split()]
        _wait_for(lambda: not any(_alive(p) for p in [*pids, supervisor]), timeout=15)
    finally:
        leftovers = pids_file.read_text().split() if pids_file.exists() else []
        for pid in [supervisor, *map(int, leftovers)]:
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
