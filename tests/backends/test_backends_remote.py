"""What every remote backend shares, through the example ``detached`` plugin (examples/
plugin-backend): real detached processes, the real MLflow client inside the project, the real
file store, ``mlproj runs cancel`` / ``runs reap`` in other processes. Nothing is faked: the
``detached`` backend is a real backend whose "cluster" is this machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlproj
from mlproj.cli.main import cli
from mlproj.errors import ExecutionException
from mlproj.statuses import RunStatus
from mlproj.tracking import get_store
from tests.backends.backends_servers import wait_for_status

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "examples" / "plugin-backend" / "src"


@pytest.fixture
def detached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The example plugins registered as ``pip install`` would (a dist-info folder), for this
    process and for the watchers and CLI processes it starts (PYTHONPATH)."""
    site = tmp_path / "site"
    dist = site / "mlproj_echo_backend-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mlproj-echo-backend\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[mlproj.backends]\n"
        "echo = mlproj_echo_backend:EchoBackend\n"
        "detached = mlproj_echo_backend:DetachedBackend\n"
    )
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.syspath_prepend(str(site))
    path = os.pathsep.join([str(site), str(PLUGIN_SRC), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path.rstrip(os.pathsep))
    yield dict(os.environ)


def _project(tmp_path: Path, command: str) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "MLproject").write_text(
        f"name: remote-demo\nentry_points:\n  main:\n    command: {json.dumps(command)}\n"
    )
    return project


def _config() -> dict[str, object]:
    return {"poll-interval": "0.1"}  # a numeric string: the same seconds rule everywhere


def _kill_watcher(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _log_artifact(run_id: str) -> str:
    folder = get_store().local_artifact_dir(run_id)
    assert folder is not None
    return (folder / "mlproj" / "output.log").read_text()


# -- defect 1: the job's end decides the status --------------------------------------------------
CRASH_AFTER_LOGGING = (
    f"{sys.executable} -c \"import mlflow; mlflow.log_param('seen', 'yes'); "
    "print('logged', flush=True); raise SystemExit(3)\""
)


def test_a_failed_job_is_failed_whatever_the_projects_mlflow_client_recorded(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    project = _project(tmp_path, CRASH_AFTER_LOGGING)
    with pytest.raises(ExecutionException, match=r"Run \(ID '\w+'\) failed: exited with code 3"):
        mlproj.run(str(project), backend="detached", backend_config=_config())
    (run,) = get_store().search_runs(["0"])
    # The project's client logged into the run and ended it FINISHED at exit; mlproj did not
    # keep that.
    assert run.params == {"seen": "yes"}
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.error"] == "exited with code 3"
    assert run.tags["mlproj.backend"] == "detached"
    assert "logged" in _log_artifact(run.run_id)

    submitted = mlproj.run(
        str(project), backend="detached", backend_config=_config(), synchronous=False
    )
    assert submitted.wait() is False
    assert submitted.get_status() == RunStatus.FAILED
    assert get_store().get_run(submitted.run_id).info.status == RunStatus.FAILED
    assert get_store().get_run(submitted.run_id).params == {"seen": "yes"}


def test_a_successful_job_is_finished_and_the_cli_exit_code_agrees(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    project = _project(tmp_path, "echo hello from the job")
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "-b", "detached"],
        capture_output=True,
        text=True,
        env=detached,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (run,) = get_store().search_runs(["0"])
    assert run.info.status == RunStatus.FINISHED
    assert _log_artifact(run.run_id) == "hello from the job\n"
    failing = _project(tmp_path / "f", "echo bad; exit 5")
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(failing), "-b", "detached"],
        capture_output=True,
        text=True,
        env=detached,
        check=False,
    )
    assert done.returncode == 1
    assert "failed: exited with code 5" in done.stderr
    statuses = sorted(r.info.status for r in get_store().search_runs(["0"]))
    assert statuses == [RunStatus.FAILED, RunStatus.FINISHED]


# -- defect 2: a lost log never keeps the run RUNNING --------------------------------------------
def test_a_log_that_cannot_be_uploaded_never_keeps_the_run_running(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    mlruns = tmp_path / "mlruns"
    # The job breaks its own artifact folder: uploading the log then fails in the store.
    breaker = (
        f'd=$(ls -d {mlruns}/*/$MLFLOW_RUN_ID)/artifacts; rm -rf "$d"; echo x > "$d"; echo done'
    )
    project = _project(tmp_path, breaker)
    submitted = mlproj.run(str(project), backend="detached", backend_config=_config())
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == RunStatus.FINISHED
    assert submitted.get_status() == RunStatus.FINISHED
    assert run.tags["mlproj.log.error"]
    logs = CliRunner().invoke(cli, ["runs", "logs", submitted.run_id])
    assert logs.exit_code == 1
    assert "could not be kept when the run ended" in logs.output
    assert "Traceback" not in logs.output


# -- defect 4: reap settles remote runs whose watcher died ---------------------------------------
def test_reap_records_the_real_end_of_remote_runs_whose_watcher_died(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    ended = mlproj.run(
        str(_project(tmp_path / "a", "echo first; exit 4")),
        backend="detached",
        backend_config=_config(),
        synchronous=False,
    )
    going = mlproj.run(
        str(_project(tmp_path / "b", "sleep 3; echo second")),
        backend="detached",
        backend_config=_config(),
        synchronous=False,
    )
    _kill_watcher(ended.watcher_pid)  # type: ignore[attr-defined]
    _kill_watcher(going.watcher_pid)  # type: ignore[attr-defined]
    store = get_store()
    job_dir = Path(store.get_run(ended.run_id).tags["detached.dir"])
    deadline = time.monotonic() + 30
    while not (job_dir / "exit-code").exists():
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.1)
    assert store.get_run(ended.run_id).info.status == RunStatus.RUNNING  # nobody recorded it

    dry = CliRunner().invoke(cli, ["runs", "reap", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"Would check: {ended.run_id}" in dry.output
    assert store.get_run(ended.run_id).info.status == RunStatus.RUNNING

    reaped = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "reap"],
        capture_output=True,
        text=True,
        env=detached,
        check=False,
    )
    assert reaped.returncode == 0, reaped.stderr
    assert f"Recorded FAILED: {ended.run_id}" in reaped.stdout
    assert f"Still RUNNING, started a new watcher: {going.run_id}" in reaped.stdout
    run = store.get_run(ended.run_id)
    assert run.info.status == RunStatus.FAILED
    assert run.tags["mlproj.error"] == "exited with code 4"
    assert _log_artifact(ended.run_id) == "first\n"
    # The new watcher (started by reap, which has exited) records the other run's end.
    wait_for_status(store, going.run_id, RunStatus.FINISHED, timeout=60)
    assert _log_artifact(going.run_id) == "second\n"


# -- cancel through the registry, from another process ---------------------------------------------
def test_runs_cancel_finds_a_plugin_job_from_its_tags(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    submitted = mlproj.run(
        str(_project(tmp_path, "echo started; sleep 120")),
        backend="detached",
        backend_config=_config(),
        synchronous=False,
    )
    store = get_store()
    pid = int(store.get_run(submitted.run_id).tags["detached.pid"])
    time.sleep(0.5)
    cancelled = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "cancel", submitted.run_id],
        capture_output=True,
        text=True,
        env=detached,
        check=False,
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"Run {submitted.run_id}: KILLED"
    assert store.get_run(submitted.run_id).info.status == RunStatus.KILLED
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the job's process group is gone (reaped by us, its parent)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
            time.sleep(0.1)
    assert submitted.wait() is False
    assert submitted.get_status() == RunStatus.KILLED
    again = CliRunner().invoke(cli, ["runs", "cancel", submitted.run_id])
    assert again.exit_code == 1
    assert "is already KILLED" in again.output


def test_a_backend_that_cannot_reattach_says_so(tmp_path: Path, detached: dict[str, str]) -> None:
    store = get_store()
    info = store.create_run(
        store.resolve_experiment(None, None),
        run_name="x",
        tags={"mlproj.backend": "nope-not-installed"},
        user_id="u",
    )
    result = CliRunner().invoke(cli, ["runs", "cancel", info.run_id])
    assert result.exit_code == 1
    assert "Unknown backend 'nope-not-installed'" in result.output
    reaped = CliRunner().invoke(cli, ["runs", "reap"])
    assert reaped.exit_code == 1
    assert f"could not check {info.run_id}" in reaped.output
    assert store.get_run(info.run_id).info.status == RunStatus.RUNNING  # nothing guessed


def test_reap_fails_a_run_whose_submission_died_before_its_job_existed(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    from mlproj.backends.remote.watcher import watcher_tags

    store = get_store()
    experiment = store.resolve_experiment(None, None)
    gone = subprocess.Popen(["true"])
    dead = watcher_tags(gone.pid)  # identity taken while it runs (or just ended)
    gone.wait()
    dead["mlproj.watcher.start"] = dead["mlproj.watcher.start"] or "1"  # never matches now
    died = store.create_run(
        experiment, run_name="died", tags={"mlproj.backend": "detached", **dead}, user_id="u"
    )
    submitting = store.create_run(
        experiment,
        run_name="submitting",
        tags={"mlproj.backend": "detached", **watcher_tags()},  # this process: alive
        user_id="u",
    )
    reaped = CliRunner().invoke(cli, ["runs", "reap"])
    assert reaped.exit_code == 0, reaped.output
    assert f"Recorded FAILED: {died.run_id}" in reaped.output
    assert f"Cannot check: {submitting.run_id}" in reaped.output
    run = store.get_run(died.run_id)
    assert run.info.status == RunStatus.FAILED
    assert "the submission never finished" in run.tags["mlproj.error"]
    assert store.get_run(submitting.run_id).info.status == RunStatus.RUNNING


# -- MLflow issues 3536/2820 on remote backends: number texts logged at the end -----------------
RELOG_FLOAT = (
    f'{sys.executable} -c "import sys, mlflow; print(sys.argv[1:], flush=True); '
    "mlflow.log_param('n', float(sys.argv[1]))\" {n} {lr}"
)


def test_number_params_whose_text_differs_are_logged_when_a_remote_run_ends(
    tmp_path: Path, detached: dict[str, str]
) -> None:
    """The command gets `50` (as under MLflow); a project that logs float('50') writes `50.0`,
    which the store would refuse beside a `50` logged at start. So on a remote backend too,
    such a param is logged when the run ends, and only if the project did not log it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(
        "entry_points:\n"
        "  main:\n"
        "    parameters: {n: {type: float, default: 50}, lr: {type: float, default: 1e-3}}\n"
        f"    command: {json.dumps(RELOG_FLOAT)}\n"
    )
    submitted = mlproj.run(str(project), backend="detached", backend_config=_config())
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == RunStatus.FINISHED, run.tags.get("mlproj.error")
    assert "['50', '1e-3']" in _log_artifact(run.run_id)  # the text as written
    # `n` as the project logged it; `lr`, which it did not log, as the command got it.
    assert run.params == {"n": "50.0", "lr": "1e-3"}

    # From the CLI, asynchronous: the detached watcher records the end and the params.
    started = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "-b", "detached", "--no-wait",
         "-c", json.dumps(_config())],
        capture_output=True, text=True, env=detached, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    # The project's own client ends the run FINISHED first; mlproj's outcome tag comes after.
    deadline = time.monotonic() + 120
    while "mlproj.outcome" not in get_store().get_run(run_id).tags:
        assert time.monotonic() < deadline, "the watcher never recorded the end"
        time.sleep(0.2)
    assert get_store().get_run(run_id).params == {"n": "50.0", "lr": "1e-3"}
