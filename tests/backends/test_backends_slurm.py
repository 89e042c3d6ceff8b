"""The slurm backend on a real Slurm (``.ci/slurm-setup.sh``: slurmctld + slurmd on this
machine, no accounting database, job-completion file, MinJobAge=2): real jobs, the real MLflow
client inside them, ``mlproj runs logs/cancel/reap`` in other processes. Nothing is faked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlproj
from mlproj.errors import ExecutionException
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tracking import get_store
from tests.backends.backends_servers import wait_for_status, wait_for_watcher
from tests.backends.engine_support import (
    MLPROJ,
    failed_run_id,
    kill_watcher,
    log_artifact,
    mlproj_cli,
    only_run,
    wait_until,
    write_project,
)


def _slurm_problem() -> str | None:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "Slurm's client commands are not installed (run .ci/slurm-setup.sh)"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer: slurmctld is not running (run .ci/slurm-setup.sh)"
    states = done.stdout.split()
    if done.returncode != 0 or not any(
        s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states
    ):
        return f"no usable Slurm node (sinfo: {done.stdout.strip() or done.stderr.strip()!r}); run .ci/slurm-setup.sh"
    return None


pytestmark = [
    pytest.mark.skipif(_slurm_problem() is not None, reason=str(_slurm_problem())),
    pytest.mark.timeout(300),
]
FAST = {"poll-interval": 0.3}


def _run(project: Path, *, synchronous: bool, **config: object) -> mlproj.SubmittedRun:
    return mlproj.run(
        str(project),
        backend="slurm",
        backend_config={**FAST, **config},
        env_manager="local",
        synchronous=synchronous,
    )


def _queue_state(job_id: str) -> str | None:
    """The job's state in slurmctld's memory; None once purged (or never known)."""
    done = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def test_a_job_logs_into_the_run_and_its_output_is_streamed_and_kept(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = "import mlflow; mlflow.log_metric('accuracy', 0.75); print('hello from slurm')"
    project = write_project(tmp_path, "slurm-demo", f'{sys.executable} -c "{code}"')
    submitted = _run(project, synchronous=True)
    assert submitted.get_status() == RunStatus.FINISHED
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == RunStatus.FINISHED
    assert run.metrics["accuracy"] == 0.75  # logged by the job, into mlproj's run
    assert run.tags["mlproj.slurm.state"] == "COMPLETED"
    assert run.tags["mlproj.slurm.job_id"].isdigit()
    assert run.tags["mlflow.project.backend"] == "slurm"
    assert "hello from slurm" in capfd.readouterr().out  # followed on the console
    assert "hello from slurm" in log_artifact(submitted.run_id)


def test_a_job_that_relogs_a_float_param_finishes(tmp_path: Path) -> None:
    """MLflow issues 3536/2820 on a real Slurm: the job gets `50` and logs float('50') =
    `50.0`; mlproj logs the param only when the job has ended, so the store takes it."""
    code = "import sys, mlflow; mlflow.log_param('n', float(sys.argv[1])); print(sys.argv[1:])"
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(
        "entry_points:\n  main:\n"
        "    parameters: {n: {type: float, default: 50}, k: {type: float, default: 7}}\n"
        f'    command: "{sys.executable} -c \\"{code}\\" {{n}} {{k}}"\n'
    )
    submitted = _run(project, synchronous=True)
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == RunStatus.FINISHED, run.tags.get("mlproj.error")
    assert "['50', '7']" in log_artifact(submitted.run_id)
    assert run.params == {"n": "50.0", "k": "7"}


def test_a_failing_command_is_failed_with_slurms_state_and_reason(tmp_path: Path) -> None:
    project = write_project(tmp_path, "slurm-demo", "echo about to fail; exit 3")
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed") as caught:
        _run(project, synchronous=True)
    assert "NonZeroExitCode" in caught.value.message
    run_id = failed_run_id(caught.value.message)
    run = get_store().get_run(run_id)
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.slurm.state"] == "FAILED"
    assert run.tags["mlproj.slurm.reason"] == "NonZeroExitCode"
    assert run.tags["mlproj.slurm.exit_code"] == "3:0"
    assert "FAILED (NonZeroExitCode), exit code 3:0" in run.tags["mlproj.error"]
    assert "about to fail" in log_artifact(run_id)


def test_cancel_scancels_the_job_and_the_run_is_killed_once_it_is_gone(tmp_path: Path) -> None:
    project = write_project(tmp_path, "slurm-demo", "echo started; sleep 300")
    submitted = _run(project, synchronous=False)
    job_id = get_store().get_run(submitted.run_id).tags["mlproj.slurm.job_id"]
    wait_until(lambda: _queue_state(job_id) == "RUNNING", 60, "the job to run")
    submitted.cancel()
    assert submitted.get_status() == RunStatus.KILLED
    assert _queue_state(job_id) in (None, "CANCELLED")  # no longer pending or running
    wait_for_status(get_store(), submitted.run_id, RunStatus.KILLED, 30)
    run = get_store().get_run(submitted.run_id)
    assert run.tags["mlproj.slurm.state"] == "CANCELLED"
    assert "started" in log_artifact(submitted.run_id)
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_another_process_finds_the_job_from_the_tags_and_cancels_it(tmp_path: Path) -> None:
    project = write_project(tmp_path, "slurm-demo", "sleep 300")
    submitted = _run(project, synchronous=False)
    job_id = get_store().get_run(submitted.run_id).tags["mlproj.slurm.job_id"]
    wait_until(lambda: _queue_state(job_id) == "RUNNING", 60, "the job to run")
    done = mlproj_cli("runs", "cancel", submitted.run_id, timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"Run {submitted.run_id}: KILLED" in done.stdout
    assert _queue_state(job_id) in (None, "CANCELLED")
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.KILLED
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_reap_settles_a_job_that_ended_and_was_purged_while_nobody_watched(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path, "slurm-demo", "echo finished unwatched")
    submitted = _run(project, synchronous=False)
    kill_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]
    run = get_store().get_run(submitted.run_id)
    job_id = run.tags["mlproj.slurm.job_id"]
    # slurmctld forgets finished jobs a few seconds after they end (MinJobAge=2, swept).
    wait_until(lambda: _queue_state(job_id) is None, 90, "slurmctld to purge the finished job")
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.RUNNING
    done = mlproj_cli("runs", "reap", timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Recorded FINISHED: {submitted.run_id}" in done.stdout
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == RunStatus.FINISHED  # from the job-completion file
    assert run.tags["mlproj.slurm.state"] == "COMPLETED"
    assert "finished unwatched" in log_artifact(submitted.run_id)


def test_runs_logs_follow_prints_the_output_while_the_job_runs(tmp_path: Path) -> None:
    project = write_project(tmp_path, "slurm-demo", "echo line one; sleep 4; echo line two")
    submitted = _run(project, synchronous=False)
    follower = subprocess.Popen(
        [*MLPROJ, "runs", "logs", "--follow", submitted.run_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "line one\n"
        # Printed while the job still ran: the run is not over yet.
        assert get_store().get_run(submitted.run_id).info.status != RunStatus.FINISHED
        rest, _ = follower.communicate(timeout=120)
    finally:
        follower.kill()
    assert "line two" in rest
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.FINISHED
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_ctrl_c_on_the_cli_cancels_the_job(tmp_path: Path) -> None:
    project = write_project(tmp_path, "slurm-demo", "echo started; sleep 300")
    cli = subprocess.Popen(
        [*MLPROJ, "run", str(project), "-b", "slurm", "--env-manager", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == "started\n"  # the job runs, followed by the CLI
        cli.send_signal(signal.SIGINT)
        _out, err = cli.communicate(timeout=120)
    finally:
        cli.kill()
    assert cli.returncode != 0
    run = only_run()
    assert run.info.status == RunStatus.KILLED, err
    assert run.tags["mlproj.slurm.state"] == "CANCELLED"
    assert _queue_state(run.tags["mlproj.slurm.job_id"]) in (None, "CANCELLED")


def test_many_watched_jobs_cost_one_queue_query_per_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlproj.backends.slurm.run import lookup

    jobs = []
    for _ in range(5):
        done = subprocess.run(
            ["sbatch", "--parsable", "--hold", "--wrap", "true", f"--output={tmp_path}/%j.out"],
            capture_output=True,
            text=True,
            check=True,
        )
        jobs.append(done.stdout.strip())
    try:
        # A real squeue, counted: a wrapper first on PATH notes each call.
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        calls = tmp_path / "squeue-calls"
        wrapper = bin_dir / "squeue"
        wrapper.write_text(f'#!/bin/sh\necho x >> {calls}\nexec {shutil.which("squeue")} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        since = time.time() - 5
        for _poll in range(3):
            states = [lookup(job, since, max_age=30) for job in jobs]
            assert all(s is not None and s.status == RunStatus.SCHEDULED for s in states)
        assert calls.read_text().count("x") == 1
    finally:
        subprocess.run(["scancel", *jobs], check=False)


def test_a_docker_project_without_apptainer_is_refused_before_any_run(tmp_path: Path) -> None:
    if shutil.which("apptainer") or shutil.which("singularity"):
        pytest.skip("Apptainer/Singularity is installed here: the refusal cannot happen")
    project = write_project(
        tmp_path, "slurm-demo", "true", extra="docker_env:\n  image: python:3.11-slim\n"
    )
    with pytest.raises(ExecutionException, match="Apptainer or Singularity"):
        _run(project, synchronous=True)
    store = get_store()
    experiments = [e.experiment_id for e in store.list_experiments()]
    assert store.search_runs(experiments) == []


def test_config_mistakes_are_refused_before_any_run(tmp_path: Path) -> None:
    project = write_project(tmp_path, "slurm-demo", "true")
    with pytest.raises(ExecutionException, match=r"unknown key\(s\) 'partiton'.*'partition'"):
        _run(project, synchronous=True, partiton="debug")
    with pytest.raises(ExecutionException, match="'time' = 'soon' is not a Slurm time limit"):
        _run(project, synchronous=True, time="soon")
    with pytest.raises(ExecutionException, match="'cpus_per_task' must be a whole number"):
        _run(project, synchronous=True, cpus_per_task="two")


def test_a_job_past_its_time_limit_is_failed_as_timeout(tmp_path: Path) -> None:
    # Slurm limits are whole minutes: this test takes a little over one.
    project = write_project(tmp_path, "slurm-demo", "echo working; sleep 300")
    started = time.monotonic()
    with pytest.raises(ExecutionException, match=r"TIMEOUT \(TimeLimit\)"):
        _run(project, synchronous=True, timeout=30)  # rounded up to --time=1
    assert time.monotonic() - started < 200
    run = only_run()
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.slurm.state"] == "TIMEOUT"
    assert "DUE TO TIME LIMIT" in log_artifact(run.info.run_id)


@pytest.mark.parametrize("env_build", ["submit", "job"])
def test_the_python_env_is_built_on_this_host_or_inside_the_job(
    tmp_path: Path, env_build: str
) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    project = write_project(
        tmp_path,
        "slurm-demo",
        "python -c 'import sys; print(\"prefix\", sys.prefix)'",
        extra="python_env: python_env.yaml\n",
    )
    (project / "python_env.yaml").write_text(f"python: '{version}'\ndependencies: []\n")
    submitted = mlproj.run(
        str(project), backend="slurm", backend_config={**FAST, "env_build": env_build}
    )
    assert submitted.get_status() == RunStatus.FINISHED
    log = log_artifact(submitted.run_id)
    prefix = next(line.split(" ", 1)[1] for line in log.splitlines() if line.startswith("prefix "))
    assert Path(prefix).is_relative_to(os.environ["MLPROJ_HOME"])  # the env of MLPROJ_HOME
    assert Path(prefix) != Path(sys.prefix)
    # Who built it: the job's own output says so only when the job did.
    assert ("mlproj: Creating environment" in log) == (env_build == "job")


def test_the_end_of_a_job_is_recorded_at_once_not_at_the_next_poll(tmp_path: Path) -> None:
    # With a 30 s poll interval, reads slow down to one every ~8 s by the time the 8 s job
    # ends; the end marker the batch script writes makes the watcher read the queue at once.
    stamp = tmp_path / "ended"
    project = write_project(tmp_path, "slurm-demo", f"sleep 8; date +%s.%N > {stamp}")
    submitted = _run(project, synchronous=True, **{"poll-interval": 30})
    assert submitted.get_status() == RunStatus.FINISHED
    run = get_store().get_run(submitted.run_id)
    assert run.info.end_time is not None
    late = run.info.end_time / 1000 - float(stamp.read_text())
    assert late < 1.5, f"the end was recorded {late:.2f} s after the command ended"
    assert run.tags["mlproj.slurm.state"] == "COMPLETED"  # from Slurm, not from the marker
    output = Path(run.tags["mlproj.slurm.output"])
    assert not output.with_suffix(".end").exists()  # removed once the end is recorded


def test_finished_jobs_are_read_from_accounting_and_from_the_job_completion_file(
    tmp_path: Path,
) -> None:
    # Both places slurmctld keeps finished jobs, on the same real jobs: sacct (slurmdbd on
    # MariaDB, .ci/slurm-setup.sh) and the jobcomp/filetxt file written beside it.
    from mlproj.backends.slurm import commands

    config = commands.cluster_config()
    if config.get("AccountingStorageType") != "accounting_storage/slurmdbd":
        pytest.skip("this Slurm has no accounting database (MLPROJ_CI_SLURM_ACCOUNTING=0)")
    assert commands.where_ends_are_kept() == "sacct"
    submitted = time.time()
    jobs = {}
    for name, command in (("ok", "true"), ("bad", "exit 3"), ("long", "sleep 300")):
        done = subprocess.run(
            ["sbatch", "--parsable", f"--output={tmp_path}/%j.out", "--wrap", command],
            capture_output=True,
            text=True,
            check=True,
        )
        jobs[name] = done.stdout.strip()
    wait_until(lambda: _queue_state(jobs["long"]) == "RUNNING", 60, "the long job to run")
    subprocess.run(["scancel", jobs["long"]], check=True)
    ids = list(jobs.values())
    wait_until(lambda: len(commands._sacct(ids)) == 3, 60, "sacct to know all three jobs")
    wait_until(
        lambda: all(s.status in TERMINAL_STATUSES for s in commands._sacct(ids).values()),
        60,
        "sacct to record their ends",
    )
    from_sacct = commands._sacct(ids)
    assert commands.finished_jobs(ids, submitted) == from_sacct  # accounting is what is used
    assert from_sacct[jobs["ok"]] == commands.JobState("COMPLETED", "", "0:0")
    assert from_sacct[jobs["bad"]] == commands.JobState("FAILED", "", "3:0")
    assert from_sacct[jobs["long"]].status == RunStatus.KILLED
    location = Path(config["JobCompLoc"])
    wait_until(
        lambda: len(commands.read_jobcomp(location, ids, submitted)) == 3, 60, "the jobcomp lines"
    )
    from_file = commands.read_jobcomp(location, ids, submitted)
    assert {k: s.state for k, s in from_file.items()} == {k: s.state for k, s in from_sacct.items()}
    assert from_file[jobs["bad"]].exit_code == "3:0"


def test_a_command_killed_by_a_signal_is_failed(tmp_path: Path) -> None:
    # The batch script outlives the command (to write the end marker): its exit code is then
    # bash's 128+9 for the SIGKILL, and the job FAILED, never COMPLETED.
    project = write_project(tmp_path, "slurm-demo", "echo dying; kill -9 $$")
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed") as caught:
        _run(project, synchronous=True)
    run = get_store().get_run(failed_run_id(caught.value.message))
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.slurm.state"] == "FAILED"
    assert run.tags["mlproj.slurm.exit_code"] == "137:0"
    assert "dying" in log_artifact(run.info.run_id)
