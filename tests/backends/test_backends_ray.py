"""The ray backend on a real Ray head (``.ci/ray-setup.sh``: ``ray start --head``, job API on
127.0.0.1:8265, started from a Python with mlflow, so ``python`` in a job can log): real jobs
through the Ray Jobs API, ``mlproj runs logs/cancel/reap`` in other processes. Nothing is
faked."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

import mlproj
from mlproj.errors import ExecutionException
from mlproj.statuses import RunStatus
from mlproj.tracking import get_store
from tests.backends.backends_servers import wait_for_status, wait_for_watcher
from tests.backends.engine_support import (
    failed_run_id,
    kill_watcher,
    log_artifact,
    mlproj_cli,
    wait_until,
    write_project,
)

ADDRESS = os.environ.get("MLPROJ_TEST_RAY_ADDRESS", "http://127.0.0.1:8265")


def _ray_problem() -> str | None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "ray is not installed in this Python (pip install 'mlproj[ray]')"
    try:
        with urllib.request.urlopen(f"{ADDRESS}/api/version", timeout=10) as answer:
            answer.read()
    except OSError as exc:
        return f"no Ray job API at {ADDRESS} ({exc}); start one with .ci/ray-setup.sh"
    return None


pytestmark = [
    pytest.mark.skipif(_ray_problem() is not None, reason=str(_ray_problem())),
    pytest.mark.timeout(400),
]


def _run(project: Path, *, synchronous: bool, **config: object) -> mlproj.SubmittedRun:
    return mlproj.run(
        str(project),
        backend="ray",
        backend_config={"address": ADDRESS, "poll-interval": 0.3, **config},
        env_manager="local",  # the head's Python, which has mlflow
        synchronous=synchronous,
    )


def _job_status(run_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(ADDRESS).get_job_status(f"mlproj-{run_id}"))


def test_a_job_logs_into_the_run_and_its_output_is_streamed_and_kept(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = "import mlflow; mlflow.log_metric('accuracy', 0.5); print('hello from ray')"
    project = write_project(tmp_path, "ray-demo", f'python -c "{code}"')
    submitted = _run(project, synchronous=True)
    assert submitted.get_status() == RunStatus.FINISHED
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == RunStatus.FINISHED
    assert run.metrics["accuracy"] == 0.5  # logged inside the Ray job, into mlproj's run
    assert run.tags["mlproj.ray.status"] == "SUCCEEDED"
    assert run.tags["mlproj.ray.exit_code"] == "0"
    assert run.tags["mlproj.ray.submission_id"] == f"mlproj-{submitted.run_id}"
    assert "hello from ray" in capfd.readouterr().out  # tailed live to the console
    kept = log_artifact(submitted.run_id)
    assert "hello from ray" in kept
    assert "job_manager.py" not in kept  # Ray's own lines are left out


def test_a_failing_command_is_failed_with_the_exit_code_and_message(tmp_path: Path) -> None:
    project = write_project(tmp_path, "ray-demo", "echo about to fail; exit 3")
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed") as caught:
        _run(project, synchronous=True)
    run_id = failed_run_id(caught.value.message)
    run = get_store().get_run(run_id)
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.ray.status"] == "FAILED"
    assert run.tags["mlproj.ray.exit_code"] == "3"
    assert "failed with exit code 3" in run.tags["mlproj.ray.message"]
    assert "\n" not in run.tags["mlproj.ray.message"]  # only the first line of Ray's message
    assert "exit code 3" in run.tags["mlproj.error"]
    assert "about to fail" in log_artifact(run_id)


def test_cancel_stops_the_job_and_the_run_is_killed(tmp_path: Path) -> None:
    project = write_project(tmp_path, "ray-demo", "echo started; sleep 300")
    submitted = _run(project, synchronous=False)
    wait_until(lambda: _job_status(submitted.run_id) == "RUNNING", 240, "the job to run")
    submitted.cancel()
    assert submitted.get_status() == RunStatus.KILLED
    assert _job_status(submitted.run_id) == "STOPPED"
    wait_for_status(get_store(), submitted.run_id, RunStatus.KILLED, 30)
    assert get_store().get_run(submitted.run_id).tags["mlproj.ray.status"] == "STOPPED"
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_another_process_finds_the_job_from_the_tags_and_cancels_it(tmp_path: Path) -> None:
    project = write_project(tmp_path, "ray-demo", "sleep 300")
    submitted = _run(project, synchronous=False)
    wait_until(lambda: _job_status(submitted.run_id) == "RUNNING", 240, "the job to run")
    done = mlproj_cli("runs", "cancel", submitted.run_id, timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"Run {submitted.run_id}: KILLED" in done.stdout
    assert _job_status(submitted.run_id) == "STOPPED"
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.KILLED
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_reap_records_a_job_that_ended_while_nobody_watched(tmp_path: Path) -> None:
    project = write_project(tmp_path, "ray-demo", "echo finished unwatched")
    submitted = _run(project, synchronous=False)
    kill_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]
    wait_until(lambda: _job_status(submitted.run_id) == "SUCCEEDED", 240, "the job to end")
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.RUNNING
    done = mlproj_cli("runs", "reap", timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"Recorded FINISHED: {submitted.run_id}" in done.stdout
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.FINISHED
    assert "finished unwatched" in log_artifact(submitted.run_id)


def test_runs_logs_follow_prints_the_output_while_the_job_runs(tmp_path: Path) -> None:
    project = write_project(tmp_path, "ray-demo", "echo line one; sleep 6; echo line two")
    submitted = _run(project, synchronous=False)
    wait_until(
        lambda: "line one" in _local_log(submitted.run_id), 240, "the watcher to tail the log"
    )
    follower = mlproj_cli("runs", "logs", "--follow", submitted.run_id, timeout=240)
    assert follower.returncode == 0, follower.stderr
    assert follower.stdout.startswith("line one\n")
    assert "line two" in follower.stdout
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.FINISHED
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def _local_log(run_id: str) -> str:
    path = get_store().get_run(run_id).tags.get("mlproj.log")
    return Path(path).read_text() if path and Path(path).is_file() else ""


def test_a_resubmission_after_a_crash_follows_the_existing_job(tmp_path: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    project = write_project(tmp_path, "ray-demo", "echo submitted once")
    first = _run(project, synchronous=False)
    kill_watcher(first.watcher_pid)  # type: ignore[attr-defined]
    # The submitting side crashed; the same run is submitted again (run_id=): Ray refuses
    # the submission id as "already exists", and mlproj follows the job it already has.
    again = mlproj.run(
        str(project),
        backend="ray",
        backend_config={"address": ADDRESS, "poll-interval": 0.3},
        env_manager="local",
        run_id=first.run_id,
    )
    assert again.get_status() == RunStatus.FINISHED
    jobs = [
        j
        for j in JobSubmissionClient(ADDRESS).list_jobs()
        if j.submission_id == f"mlproj-{first.run_id}"
    ]
    assert len(jobs) == 1
    assert log_artifact(first.run_id).count("submitted once") == 1


def test_docker_projects_and_config_mistakes_are_refused_before_any_run(tmp_path: Path) -> None:
    docker = write_project(
        tmp_path / "d", "ray-demo", "true", extra="docker_env:\n  image: python:3.11-slim\n"
    )
    with pytest.raises(ExecutionException, match="docker_env projects cannot run on the ray"):
        _run(docker, synchronous=True)
    plain = write_project(tmp_path / "p", "ray-demo", "true")
    with pytest.raises(ExecutionException, match=r"unknown key\(s\) 'num_cpus'"):
        _run(plain, synchronous=True, num_cpus=1)
    with pytest.raises(ExecutionException, match="must not set 'working_dir'"):
        _run(plain, synchronous=True, runtime_env={"working_dir": "/elsewhere"})
    store = get_store()
    assert store.search_runs([e.experiment_id for e in store.list_experiments()]) == []


def test_cancel_of_a_pending_job_is_kept_up_until_ray_can_stop_it(tmp_path: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    from mlproj.backends.ray import run as ray_run

    client = JobSubmissionClient(ADDRESS)
    # A job holding every CPU of the head, so the run's job (asking for 2 too) stays PENDING.
    blocker = client.submit_job(entrypoint="sleep 300", entrypoint_num_cpus=2)
    try:
        wait_until(lambda: str(client.get_job_status(blocker)) == "RUNNING", 240, "the blocker")
        marker = tmp_path / "ran"
        project = write_project(tmp_path, "ray-demo", f"sleep 2; touch {marker}")
        submitted = _run(project, synchronous=False, entrypoint_num_cpus=2)
        wait_until(lambda: _job_status(submitted.run_id) == "PENDING", 60, "the job to wait")
        started = time.monotonic()
        submitted.cancel()  # Ray ignores a stop of a PENDING job (ray-project/ray#58353)
        assert time.monotonic() - started < ray_run.PENDING_STOP_WAIT_SECONDS + 30
        run = get_store().get_run(submitted.run_id)
        assert ray_run.STOP_TAG in run.tags
        assert run.info.status == RunStatus.RUNNING  # not KILLED before Ray says so
        assert _job_status(submitted.run_id) == "PENDING"
    finally:
        client.stop_job(blocker)
    # Resources free: the job starts, the watcher stops it at once, the run is KILLED.
    wait_for_status(get_store(), submitted.run_id, RunStatus.KILLED, 240)
    assert _job_status(submitted.run_id) == "STOPPED"
    assert get_store().get_run(submitted.run_id).tags["mlproj.ray.status"] == "STOPPED"
    assert not marker.exists()  # stopped before its command got far
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_a_job_past_its_timeout_is_stopped_and_failed(tmp_path: Path) -> None:
    project = write_project(tmp_path, "ray-demo", "echo working; sleep 300")
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed") as caught:
        _run(project, synchronous=True, timeout=3)
    run_id = failed_run_id(caught.value.message)
    run = get_store().get_run(run_id)
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.error"].endswith("timed out after 3 s")
    assert _job_status(run_id) == "STOPPED"


def test_the_python_env_becomes_the_jobs_uv_environment(tmp_path: Path) -> None:
    # Ray builds it on the head (network to PyPI; ~1 min on a loaded machine).
    project = write_project(
        tmp_path,
        "ray-demo",
        "python -c 'import tinydb; print(\"tinydb\", tinydb.__version__)'",
        extra="python_env: python_env.yaml\n",
    )
    (project / "python_env.yaml").write_text("dependencies: [tinydb==4.8.0]\n")
    submitted = mlproj.run(
        str(project), backend="ray", backend_config={"address": ADDRESS, "poll-interval": 0.5}
    )
    assert submitted.get_status() == RunStatus.FINISHED
    assert "tinydb 4.8.0" in log_artifact(submitted.run_id)
