"""What the Slurm and Ray backend tests share: a one-command project, waiting on a condition,
the run's kept log, the ``mlproj`` CLI in another process, killing a watcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlproj.tracking import get_store
from mlproj.tracking.entities import Run

MLPROJ = [sys.executable, "-m", "mlproj"]


def write_project(tmp_path: Path, name: str, command: str, extra: str = "") -> Path:
    """A project folder whose MLproject runs ``command``; ``extra`` goes before the entry
    points (an environment, a docker_env)."""
    project = tmp_path / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "MLproject").write_text(
        f"name: {name}\n{extra}entry_points:\n  main:\n    command: {json.dumps(command)}\n"
    )
    return project


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def log_artifact(run_id: str) -> str:
    """The run's kept output (``mlproj/output.log``) in the local store."""
    folder = get_store().local_artifact_dir(run_id)
    assert folder is not None
    return (folder / "mlproj" / "output.log").read_text()


def only_run() -> Run:
    """The one run of the test's store."""
    store = get_store()
    (run,) = store.search_runs([e.experiment_id for e in store.list_experiments()])
    return run


def failed_run_id(message: str) -> str:
    """The run id in mlproj's "Run (ID '...') failed" message."""
    return message.split("'")[1]


def mlproj_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLPROJ, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def kill_watcher(pid: int | None) -> None:
    """SIGKILL a run's detached watcher (a crash) and collect it."""
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
