"""Whole runs through the CLI and the Python API with real processes, a real file store, and
the real mlflow client reading what mlproj wrote and logging into mlproj's runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import mlproj
from mlproj.api import RunOptions, submit
from mlproj.tracking.base import TrackingStore
from tests.e2e.e2e_support import MakeProject, mlflow_read, run_cli

pytestmark = pytest.mark.usefixtures("tracking_store_kind")  # on both local stores

TRAIN = """
import os, sys
import mlflow
print("training", sys.argv[1:])
mlflow.log_metric("score", float(sys.argv[1]) * 2)
mlflow.log_param("from_project", "yes")
"""

MLPROJECT = """
name: demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      name: {type: string, default: world}
    command: "python train.py {alpha} {name}"
  fail:
    command: "echo failing; exit 3"
  sleep:
    parameters:
      seconds: {type: int, default: 300}
    command: "bash sleeper.sh {seconds}"
"""

SLEEPER = """
# Two grandchildren plus the main sleep; their pids go to a file so tests can check them.
sleep "$1" & echo $! >> pids
(trap '' TERM; sleep "$1") & echo $! >> pids
echo started
wait
"""


def _project(make_project: MakeProject) -> Path:
    return make_project(MLPROJECT, train__py=TRAIN, sleeper__sh=SLEEPER)


def _runs(store: TrackingStore) -> list[mlproj.tracking.entities.Run]:
    return store.search_runs([e.experiment_id for e in store.list_experiments()])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _start_sleeping_run(project: Path) -> subprocess.Popen[str]:
    """`mlproj run -e sleep` in the background, stopped within a second of a cancel."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "-e", "sleep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLPROJ_KILL_GRACE": "1"},
    )


def test_cli_run_records_everything_mlflow_can_read(
    make_project: MakeProject, store: TrackingStore
) -> None:
    project = _project(make_project)
    done = run_cli(
        "run", str(project), "-P", "alpha=0.25", "-P", "name=hello world", "-P", "extra=x y"
    )
    assert done.returncode == 0, done.stderr
    assert "training ['0.25', 'hello world', '--extra', 'x y']" in done.stdout
    (run,) = _runs(store)
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    assert run.params["alpha"] == "0.25"
    assert run.params["name"] == "hello world"  # the user's value, not shell-quoted
    assert run.params["extra"] == "x y"
    assert run.params["from_project"] == "yes"
    assert run.metrics["score"] == 0.5
    assert run.tags["mlflow.source.type"] == "PROJECT"
    assert run.tags["mlflow.project.entryPoint"] == "main"
    assert run.tags["mlflow.project.backend"] == "local"
    assert run.tags["mlflow.source.name"] == str(project)
    assert "mlflow.project.env" not in run.tags  # local, as in MLflow
    log = Path(run.tags["mlproj.log"])
    assert "training" in log.read_text()
    assert log.name == "output.log" and log.parent.name == "mlproj"

    seen = mlflow_read(
        f"""
        r = client.get_run("{run.run_id}")
        arts = [a.path for a in client.list_artifacts(r.info.run_id, "mlproj")]
        print(json.dumps({{"status": r.info.status, "params": r.data.params,
                          "metrics": r.data.metrics, "user": r.data.tags["mlflow.user"],
                          "name": r.info.run_name, "arts": arts}}))
        """
    )
    assert seen["status"] == "FINISHED"
    assert seen["params"]["alpha"] == "0.25"
    assert seen["metrics"]["score"] == 0.5
    assert seen["arts"] == ["mlproj/output.log"]
    assert seen["name"] == run.info.run_name


def test_python_api_synchronous_run(make_project: MakeProject, store: TrackingStore) -> None:
    project = _project(make_project)
    submitted = mlproj.run(
        str(project), parameters={"alpha": 0.3}, run_name="api-run", env_manager="local"
    )
    assert isinstance(submitted, mlproj.LocalSubmittedRun)
    assert submitted.get_status() == "FINISHED"
    assert submitted.wait() is True
    run = store.get_run(submitted.run_id)
    assert run.info.run_name == "api-run"
    assert run.tags["mlflow.runName"] == "api-run"
    assert run.metrics["score"] == 0.6


def test_failed_run_raises_and_is_marked_failed(
    make_project: MakeProject, store: TrackingStore
) -> None:
    project = _project(make_project)
    with pytest.raises(mlproj.ExecutionException, match=r"Run \(ID '[0-9a-f]{32}'\) failed"):
        mlproj.run(str(project), entry_point="fail")
    (run,) = _runs(store)
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"] == "command exited with code 3"

    done = run_cli("run", str(project), "-e", "fail")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("mlproj: error: Run (ID")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-P", "alpha=abc"], "alpha"),
        (["-e", "nope"], "nope"),
    ],
)
def test_user_errors_open_no_run(
    make_project: MakeProject, store: TrackingStore, args: list[str], expected: str
) -> None:
    project = _project(make_project)
    done = run_cli("run", str(project), *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlproj: error:") and expected in lines[0]
    assert _runs(store) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-P", "novalue"], "Invalid format for -P"),
        (["-P", "a=1", "-P", "a=2"], "Repeated parameter: 'a'"),
        (["-c", "{not json"], "Invalid backend config JSON"),
        (["--experiment-name", "x", "--experiment-id", "1"], "Specify only one of"),
    ],
)
def test_usage_errors_exit_2(make_project: MakeProject, args: list[str], expected: str) -> None:
    project = _project(make_project)
    done = run_cli("run", str(project), *args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_values_reach_the_shell_quoted(make_project: MakeProject, tmp_path: Path) -> None:
    project = _project(make_project)
    pwned = tmp_path / "pwned"
    done = run_cli("run", str(project), "-P", f"name=x; touch {pwned}", "-P", "a b=$(touch pwned)")
    assert done.returncode == 0, done.stderr
    assert not pwned.exists() and not (project / "pwned").exists()
    assert f"'x; touch {pwned}', '--a b', '$(touch pwned)'" in done.stdout


def test_bad_extra_param_key_opens_no_run(
    make_project: MakeProject, store: TrackingStore, tmp_path: Path
) -> None:
    project = _project(make_project)
    done = run_cli("run", str(project), "-P", f"k;touch {tmp_path}/pwned=v")
    assert done.returncode == 1
    assert "Invalid param key" in done.stderr
    assert not (tmp_path / "pwned").exists()
    assert _runs(store) == []


def test_unknown_backend_opens_no_run(make_project: MakeProject, store: TrackingStore) -> None:
    project = _project(make_project)
    with pytest.raises(mlproj.ExecutionException, match="local"):
        mlproj.run(str(project), backend="no-such-backend")
    assert _runs(store) == []


def test_experiment_by_name_and_env(
    make_project: MakeProject, store: TrackingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(make_project)
    first = mlproj.run(str(project), experiment_name="team-a")
    exp = store.get_experiment_by_name("team-a")
    assert exp is not None
    assert store.get_run(first.run_id).info.experiment_id == exp.experiment_id
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-b")
    second = mlproj.run(str(project))
    exp_b = store.get_experiment_by_name("team-b")
    assert (
        exp_b is not None and store.get_run(second.run_id).info.experiment_id == exp_b.experiment_id
    )
    with pytest.raises(mlproj.ExecutionException, match="does not exist"):
        mlproj.run(str(project), experiment_id="424242")


def test_run_id_reenters_a_running_run(make_project: MakeProject, store: TrackingStore) -> None:
    project = _project(make_project)
    experiment_id = store.resolve_experiment()
    info = store.create_run(experiment_id, run_name="pre-made", tags={}, user_id="me")
    submitted = mlproj.run(str(project), run_id=info.run_id, parameters={"alpha": 1})
    assert submitted.run_id == info.run_id
    run = store.get_run(info.run_id)
    assert run.info.status == "FINISHED"
    assert run.metrics["score"] == 2.0
    with pytest.raises(mlproj.ExecutionException, match="already FINISHED"):
        mlproj.run(str(project), run_id=info.run_id)


def test_async_run_survives_the_caller(make_project: MakeProject, store: TrackingStore) -> None:
    project = _project(make_project)
    code = (
        "import mlproj\n"
        f"r = mlproj.run({str(project)!r}, parameters={{'alpha': 2}}, synchronous=False)\n"
        "print(r.run_id, r.get_status())\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    run_id, status = done.stdout.split()
    assert status == "RUNNING"
    _wait_for(lambda: store.get_run(run_id).info.status != "RUNNING")
    assert time.monotonic() - started < 30
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.metrics["score"] == 4.0


def test_async_cancel_stops_the_process_tree(
    make_project: MakeProject, store: TrackingStore
) -> None:
    project = _project(make_project)
    submitted = mlproj.run(str(project), entry_point="sleep", synchronous=False)
    pids = project / "pids"
    _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    children = [int(p) for p in pids.read_text().split()]
    assert submitted.get_status() == "RUNNING"
    submitted.cancel()
    assert submitted.get_status() == "KILLED"
    assert store.get_run(submitted.run_id).info.status == "KILLED"
    _wait_for(lambda: not any(_alive(p) for p in children), timeout=20)
    assert submitted.wait() is False


def test_ctrl_c_on_the_cli_kills_the_run(make_project: MakeProject, store: TrackingStore) -> None:
    project = _project(make_project)
    proc = _start_sleeping_run(project)
    pids = project / "pids"
    _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    children = [int(p) for p in pids.read_text().split()]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    (run,) = _runs(store)
    assert run.info.status == "KILLED"
    _wait_for(lambda: not any(_alive(p) for p in children), timeout=20)


def test_an_interrupt_between_the_start_and_the_wait_stops_the_command(
    make_project: MakeProject, store: TrackingStore
) -> None:
    """Ctrl-C in the instant after the command started and before its wait began (where a real
    signal landed on a loaded CI machine): the command is stopped, not left running under a
    run recorded KILLED."""
    project = _project(make_project)
    pids = project / "pids"

    def interrupt(_handle: object) -> None:
        _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
        raise KeyboardInterrupt

    options = RunOptions(uri=str(project), entry_point="sleep", on_submitted=interrupt)
    with pytest.raises(KeyboardInterrupt):
        submit(options)
    children = [int(p) for p in pids.read_text().split()]
    (run,) = _runs(store)
    assert run.info.status == "KILLED"
    _wait_for(lambda: not any(_alive(p) for p in children), timeout=20)


@pytest.mark.parametrize("delay", [0.0, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48])
def test_ctrl_c_at_any_moment_leaves_no_run_running_and_no_command_behind(
    make_project: MakeProject, store: TrackingStore, delay: float
) -> None:
    """A real SIGINT at moments spread over a run's start (import, project load, run open,
    command start, wait): exit 130 with one line, no run RUNNING, no process of the command
    left (the interpreter killed by the signal before Python set its handler is the same to a
    shell: 130)."""
    project = _project(make_project)
    proc = _start_sleeping_run(project)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    # Before Python's own handler is in place the interpreter dies of the signal, silently.
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert [r.info.status for r in _runs(store)] in ([], ["KILLED"])
    pids = project / "pids"
    started = [int(p) for p in pids.read_text().split()] if pids.exists() else []
    _wait_for(lambda: not any(_alive(p) for p in started), timeout=20)


def test_timeout_fails_the_run(make_project: MakeProject, store: TrackingStore) -> None:
    project = _project(make_project)
    done = run_cli("run", str(project), "-e", "sleep", "--timeout", "0.5", MLPROJ_KILL_GRACE="1")
    assert done.returncode == 1
    (run,) = _runs(store)
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"] == "timed out after 0.5 s"


def test_concurrent_runs_into_one_store(make_project: MakeProject, store: TrackingStore) -> None:
    project = make_project(
        """
        entry_points:
          main:
            parameters: {i: int}
            command: "echo run {i}"
        """
    )
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: run_cli("run", str(project), "-P", f"i={i}", "--experiment-name", "many"),
                range(16),
            )
        )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    exp = store.get_experiment_by_name("many")
    assert exp is not None
    runs = store.search_runs([exp.experiment_id])
    assert sorted(int(r.params["i"]) for r in runs) == list(range(16))
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert [e.name for e in store.list_experiments()].count("many") == 1  # no duplicates


def test_project_without_mlproject_runs_scripts(tmp_path: Path, store: TrackingStore) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "job.py").write_text("import sys; print('args', sys.argv[1:])\n")
    done = run_cli("run", str(folder), "-e", "job.py", "-P", "lr=0.1")
    assert done.returncode == 0, done.stderr
    assert "args ['--lr', '0.1']" in done.stdout
    (run,) = _runs(store)
    assert run.params == {"lr": "0.1"}
    assert run.tags["mlflow.project.entryPoint"] == "job.py"


def test_example_project_runs(store: TrackingStore) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hello"
    done = run_cli("run", str(example), "-P", "alpha=0.3")
    assert done.returncode == 0, done.stderr
    assert "hello! training with alpha=0.3" in done.stdout
    (run,) = _runs(store)
    assert run.info.status == "FINISHED"
    assert "loss" in run.metrics


def test_nested_runs_inherit_env_manager_and_parent(
    make_project: MakeProject, store: TrackingStore, tmp_path: Path
) -> None:
    """A multistep driver calling mlproj.run inside a project: the inner run uses the manager
    the user chose for the outer one (MLflow issue 6611) and records its parent."""
    inner = make_project(
        """
        python_env: python_env.yaml
        entry_points:
          main:
            command: "echo inner"
        """,
        name="inner",
        python_env__yaml='python: "3.11"\ndependencies: [definitely-not-a-real-package-xyz]\n',
    )
    outer = make_project(
        """
        entry_points:
          main:
            parameters: {inner: path}
            command: "python driver.py {inner}"
        """,
        name="outer",
        driver__py="import sys, mlproj\nmlproj.run(sys.argv[1])\n",
    )
    done = run_cli("run", str(outer), "--env-manager", "local", "-P", f"inner={inner}")
    assert done.returncode == 0, done.stderr
    runs = {r.tags["mlflow.source.name"]: r for r in _runs(store)}
    inner_run, outer_run = runs[str(inner)], runs[str(outer)]
    assert inner_run.info.status == "FINISHED"
    assert "mlflow.project.env" not in inner_run.tags  # local, not a uv build of a bogus package
    assert inner_run.tags["mlflow.parentRunId"] == outer_run.run_id


def _orphaned_sleeper(
    make_project: MakeProject, store: TrackingStore
) -> tuple[mlproj.tracking.entities.Run, list[int]]:
    """A sleeping run whose ``mlproj run`` was SIGKILLed once its command's identity was
    recorded: the run (still RUNNING) and the pids its command started."""
    from mlproj.tags import TAG_CHILD_PID

    project = _project(make_project)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "-e", "sleep", "-q"]
    )
    pids = project / "pids"
    _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    children = [int(p) for p in pids.read_text().split()]
    (run,) = _runs(store)
    _wait_for(lambda: TAG_CHILD_PID in store.get_run(run.run_id).tags)
    proc.kill()  # the supervisor dies without recording anything
    proc.wait()
    return store.get_run(run.run_id), children


def test_reap_stops_what_a_killed_supervisor_left(
    make_project: MakeProject, store: TrackingStore
) -> None:
    from mlproj.local_run import identity as supervision

    run, children = _orphaned_sleeper(make_project, store)
    assert run.info.status == "RUNNING"
    assert supervision.is_orphaned(run)
    assert all(_alive(p) for p in children)  # the command outlived its supervisor
    # Following it settles it (no need to know `runs reap`) instead of waiting forever.
    follow = run_cli("runs", "logs", "--follow", run.run_id, timeout=30)
    assert follow.returncode == 0
    assert "was left RUNNING by an mlproj process that is gone" in follow.stderr
    run = store.get_run(run.run_id)
    assert run.info.status == "FAILED"
    assert "supervisor" in run.tags["mlproj.error"]
    _wait_for(lambda: not any(_alive(p) for p in children), timeout=10)
    assert not supervision.is_orphaned(run)


def test_cancelling_an_orphan_stops_its_command_and_settles_it(
    store: TrackingStore, make_project: MakeProject
) -> None:
    from mlproj.local_run import identity as supervision

    run, children = _orphaned_sleeper(make_project, store)
    assert supervision.is_orphaned(run)
    cancelled = run_cli("runs", "cancel", run.run_id[:8], timeout=60)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"Run {run.run_id}: FAILED"
    assert "was left RUNNING by an mlproj process that is gone" in cancelled.stderr
    run = store.get_run(run.run_id)
    assert run.info.status == "FAILED"
    assert "supervisor" in run.tags["mlproj.error"]
    _wait_for(lambda: not any(_alive(p) for p in children), timeout=10)


def test_python_env_example_runs_in_its_own_environment(
    store: TrackingStore, tmp_path: Path
) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "python-env"
    done = run_cli("run", str(example), "-P", "word=from a test")
    assert done.returncode == 0, done.stderr
    assert "argument: from a test" in done.stdout
    assert f"VIRTUAL_ENV={tmp_path / 'mlproj-home' / 'envs'}" in done.stdout
    (run,) = _runs(store)
    assert run.tags["mlflow.project.env"] == "uv"


def test_env_file_yaml_error_is_one_line_and_opens_no_run(
    make_project: MakeProject, store: TrackingStore
) -> None:
    project = make_project(
        """
        entry_points:
          main:
            command: "true"
        """,
        python_env__yaml="python: [bad\n",
    )
    done = run_cli("run", str(project))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "python_env.yaml: not valid YAML" in lines[0] and "line 1" in lines[0]
    )
    assert _runs(store) == []


@pytest.mark.parametrize("wait", ["--wait", "--no-wait"])
def test_a_run_ends_with_its_command_though_it_left_a_daemon_holding_its_output(
    make_project: MakeProject, store: TrackingStore, wait: str
) -> None:
    # `mlflow run` returns when the command ends; so does mlproj, after MLPROJ_OUTPUT_LINGER
    # (and a detached supervisor records the end then).
    project = make_project(
        'name: daemon\nentry_points:\n  main:\n    command: "(sleep 67 &) ; echo trained"\n'
    )
    started = time.monotonic()
    done = run_cli("run", str(project), wait, MLPROJ_OUTPUT_LINGER="1")
    try:
        assert done.returncode == 0, done.stderr
        _wait_for(lambda: _runs(store) and _runs(store)[0].info.status == "FINISHED")
        assert time.monotonic() - started < 30
        (run,) = _runs(store)
        assert run.info.end_time is not None
        assert run.info.end_time - run.info.start_time < 900  # the command's end, not the wait
        artifacts = store.local_artifact_dir(run.run_id)
        assert artifacts is not None
        text = (artifacts / "mlproj" / "output.log").read_text()
        assert "trained" in text and "still hold its output" in text
        if wait == "--wait":
            assert "still hold its output" in done.stderr
    finally:
        subprocess.run(["pkill", "-f", "sleep 67"], check=False)
