"""A run's stored status is how its command ended, whatever the project's own MLflow client
recorded: the real ``mlflow`` package runs inside the project (its atexit ``end_run`` writes
FINISHED even when the script crashed), and every way of asking agrees with the store."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlproj
from mlproj.tracking.base import TrackingStore
from tests.e2e.e2e_support import MakeProject, mlflow_read, run_cli

MLPROJECT = """
name: outcome
entry_points:
  log_then_exit:
    command: "python log_then_exit.py"
  ended_then_raise:
    command: "python ended_then_raise.py"
  ended_and_ok:
    command: "python ended_and_ok.py"
"""

# The client's atexit hook ends the active run FINISHED, then the interpreter exits 1.
LOG_THEN_EXIT = """
import mlflow
mlflow.log_param("a", 1)
raise SystemExit(1)
"""

# The project ends its run FINISHED itself, then crashes.
ENDED_THEN_RAISE = """
import mlflow
with mlflow.start_run():
    mlflow.log_param("a", 1)
raise RuntimeError("boom after the run ended")
"""

ENDED_AND_OK = """
import mlflow
with mlflow.start_run():
    mlflow.log_param("a", 1)
"""

CRASHING = ["log_then_exit", "ended_then_raise"]

pytestmark = pytest.mark.usefixtures("tracking_store_kind")  # on both local stores


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    return make_project(
        MLPROJECT,
        log_then_exit__py=LOG_THEN_EXIT,
        ended_then_raise__py=ENDED_THEN_RAISE,
        ended_and_ok__py=ENDED_AND_OK,
    )


def _only_run_id(store: TrackingStore) -> str:
    (run,) = store.search_runs([e.experiment_id for e in store.list_experiments()])
    return run.run_id


def _assert_failed_in_store(store: TrackingStore, run_id: str) -> None:
    # Read right after the run ended (wait(), the CLI, `runs logs --follow`): the supervisor's
    # FAILED must already be there. (`runs logs --follow` once returned on the project's own
    # FINISHED before its log existed; tests/cli/test_cli_logs_follow.py holds that fix.)
    run = store.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.params["a"] == "1"  # the project's client did log into mlproj's run
    assert run.tags["mlproj.error"] == "command exited with code 1"
    assert run.info.end_time is not None
    seen = mlflow_read(f'print(json.dumps(client.get_run("{run_id}").info.status))')
    assert seen == "FAILED"


@pytest.mark.parametrize("entry", CRASHING)
def test_synchronous_api_run_of_a_crashing_script_is_failed(
    project: Path, store: TrackingStore, entry: str
) -> None:
    with pytest.raises(mlproj.ExecutionException, match="failed: command exited with code 1"):
        mlproj.run(str(project), entry_point=entry, env_manager="local")
    _assert_failed_in_store(store, _only_run_id(store))


@pytest.mark.parametrize("entry", CRASHING)
def test_asynchronous_run_of_a_crashing_script_is_failed(
    project: Path, store: TrackingStore, entry: str
) -> None:
    submitted = mlproj.run(str(project), entry_point=entry, synchronous=False)
    assert submitted.wait() is False
    assert submitted.get_status() == "FAILED"
    _assert_failed_in_store(store, submitted.run_id)


@pytest.mark.parametrize("entry", CRASHING)
def test_cli_run_of_a_crashing_script_is_failed(
    project: Path, store: TrackingStore, entry: str
) -> None:
    done = run_cli("run", str(project), "-e", entry)
    assert done.returncode == 1, done.stderr
    assert "failed: command exited with code 1" in done.stderr
    _assert_failed_in_store(store, _only_run_id(store))


def test_cli_detached_run_of_a_crashing_script_is_failed(
    project: Path, store: TrackingStore
) -> None:
    done = run_cli("run", str(project), "-e", "log_then_exit", "--no-wait")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    follow = run_cli("runs", "logs", "--follow", run_id, timeout=60)
    assert follow.returncode == 0, follow.stderr
    _assert_failed_in_store(store, run_id)


def test_project_that_ends_its_run_and_exits_0_is_finished(
    project: Path, store: TrackingStore
) -> None:
    submitted = mlproj.run(str(project), entry_point="ended_and_ok")
    assert submitted.wait() is True
    assert submitted.get_status() == "FINISHED"
    run = store.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.params["a"] == "1"
    assert "mlproj.error" not in run.tags

    done = run_cli("run", str(project), "-e", "ended_and_ok", "-q")
    assert done.returncode == 0, done.stderr
