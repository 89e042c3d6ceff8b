"""Sweeps on real runs: grid, random, Optuna, failures, GPUs, cancel and resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import mlproj
from mlproj.statuses import RunStatus
from mlproj.tags import (
    MLFLOW_PARENT_RUN_ID,
    TAG_BEST_METRIC,
    TAG_BEST_RUN,
    TAG_ERROR,
    TAG_GPU,
    TAG_KIND,
    TAG_RETRY_OF,
    TAG_TRIAL,
)
from mlproj.tracking import get_store
from tests.orchestration.orch_support import (
    PY,
    children,
    cli,
    parents,
    running_children,
    start_cli,
    stop,
    trial_project,
    wait_for,
)


def _max_overlap(runs: list) -> int:
    events = []
    for run in runs:
        events += [(run.info.start_time, 1), (run.info.end_time, -1)]
    level = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        level += change
        peak = max(peak, level)
    return peak


def test_grid_sweep_runs_every_point_as_children_of_one_parent(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    done = cli(
        "sweep",
        str(project),
        "-P",
        "x=0.1,0.3,0.6",
        "-P",
        "y=[1,2]",
        "-P",
        "sleep=0.3",
        "--max-parallel",
        "2",
        "--metric",
        "loss",
    )
    assert done.returncode == 0, done.stderr
    (parent,) = parents("sweep")
    assert parent.info.status == RunStatus.FINISHED
    trials = children(parent.run_id)
    assert len(trials) == 6
    assert all(t.tags[MLFLOW_PARENT_RUN_ID] == parent.run_id for t in trials)
    assert all(t.tags[TAG_KIND] == "trial" for t in trials)
    assert sorted(int(t.tags[TAG_TRIAL]) for t in trials) == list(range(6))
    points = sorted((t.params["x"], t.params["y"]) for t in trials)
    assert points == sorted((x, y) for x in ("0.1", "0.3", "0.6") for y in ("1", "2"))
    assert _max_overlap(trials) <= 2
    best = min(trials, key=lambda t: t.metrics["loss"])
    assert best.params == {"x": "0.3", "y": "1", "sleep": "0.3"}
    assert parent.tags[TAG_BEST_RUN] == best.run_id
    assert float(parent.tags[TAG_BEST_METRIC]) == pytest.approx(1.0)
    # The summary is printed best first; the spec is an artifact of the parent.
    table = [line for line in done.stdout.splitlines() if line.strip()]
    assert best.run_id in table[1]
    artifacts = get_store().local_artifact_dir(parent.run_id)
    assert artifacts is not None
    assert json.loads((artifacts / "sweep.json").read_text())["method"] == "grid"
    listed = cli("runs", "list", "--parent", parent.run_id)
    assert listed.returncode == 0
    assert sum(t.run_id in listed.stdout for t in trials) == 6
    assert parent.run_id not in listed.stdout


def test_random_sweep_draws_the_same_trials_for_the_same_seed(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    space = {"x": "loguniform(1e-3,1)", "y": "range(1,4)"}
    drawn = []
    for _ in range(2):
        sweep = mlproj.sweep(
            str(project),
            parameters=space,
            method="random",
            max_runs=4,
            seed=11,
            max_parallel=2,
            metric="loss",
            synchronous=True,
        )
        assert sweep.status == RunStatus.FINISHED
        drawn.append(
            sorted((t.number, t.params["x"], t.params["y"]) for t in sweep.trials.values())
        )
        assert len(sweep.runs) == 4
        assert sweep.best_run is not None
        assert sweep.best_run.metrics["loss"] == min(r.metrics["loss"] for r in sweep.runs)
    assert drawn[0] == drawn[1]
    for _, x, y in drawn[0]:
        assert 1e-3 <= float(x) <= 1 and y in ("1", "2", "3")
    assert len({x for _, x, _ in drawn[0]}) == 4


def test_optuna_sweep_runs_a_seeded_tpe_study_stored_beside_the_runs(tmp_path: Path) -> None:
    import optuna

    project = trial_project(tmp_path / "proj")
    sweep = mlproj.sweep(
        str(project),
        parameters={"x": "uniform(0,1)", "y": [1, 2]},
        method="optuna",
        max_runs=6,
        seed=3,
        metric="loss",
        max_parallel=2,
        synchronous=True,
    )
    assert sweep.status == RunStatus.FINISHED
    runs = sweep.runs
    assert len(runs) == 6 and all(r.info.status == RunStatus.FINISHED for r in runs)
    journal = Path(get_store().root) / runs[0].info.experiment_id / ".mlproj-optuna"
    (path,) = journal.glob("*.journal")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.load_study(study_name=f"mlproj-{sweep.parent_run_id}", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert study.best_value == pytest.approx(sweep.best_trial.value)
    parent = get_store().get_run(sweep.parent_run_id)
    assert parent.tags[TAG_BEST_RUN] == sweep.best_run.run_id


def test_failed_trials_do_not_stop_the_sweep_but_max_failures_does(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    grid = ("-P", "y=5,6", "-P", "x=0.1,0.2")
    done = cli("sweep", str(project), *grid, FAIL_WHEN_Y="5")
    assert done.returncode == 0, done.stderr
    (parent,) = parents("sweep")
    statuses = sorted(r.info.status for r in children(parent.run_id))
    assert statuses == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert "trial 0 failed" in done.stderr

    stopped = cli("sweep", str(project), *grid, "--max-failures", "1", FAIL_WHEN_Y="5")
    assert stopped.returncode == 1
    second = next(p for p in parents("sweep") if p.run_id != parent.run_id)
    assert second.info.status == RunStatus.FAILED
    assert "max-failures" in second.tags[TAG_ERROR]
    assert len(children(second.run_id)) == 1


def test_bad_sweep_input_is_one_line_before_any_run(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    bad_value = cli("sweep", str(project), "-P", "y=1,abc")
    assert bad_value.returncode == 1
    assert "y='abc'" in bad_value.stderr and "Traceback" not in bad_value.stderr
    grid_of_floats = cli("sweep", str(project), "-P", "x=uniform(0,1)")
    assert grid_of_floats.returncode == 1 and "--method random" in grid_of_floats.stderr
    no_metric = cli("sweep", str(project), "-P", "x=uniform(0,1)", "--method", "optuna")
    assert no_metric.returncode == 1 and "--metric" in no_metric.stderr
    assert get_store().search_runs(["0"]) == []


def test_a_sweep_file_in_wandb_shape(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        textwrap.dedent(
            """\
            method: random
            metric: {name: loss, goal: maximize}
            parameters:
              x: {distribution: uniform, min: 0, max: 1}
              y: {values: [1, 2]}
              sleep: {value: 0}
            run_cap: 3
            """
        )
    )
    done = cli("sweep", str(project), "-f", str(sweep_file), "--seed", "5")
    assert done.returncode == 0, done.stderr
    (parent,) = parents("sweep")
    trials = children(parent.run_id)
    assert len(trials) == 3
    best = max(trials, key=lambda t: t.metrics["loss"])
    assert parent.tags[TAG_BEST_RUN] == best.run_id


def test_gpus_pin_one_device_per_running_trial(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    done = cli(
        "sweep",
        str(project),
        "-P",
        "x=0.1,0.2,0.3,0.4",
        "-P",
        "sleep=0.3",
        "--max-parallel",
        "3",
        "--gpus",
        "0,1",
    )
    assert done.returncode == 0, done.stderr
    (parent,) = parents("sweep")
    trials = children(parent.run_id)
    assert len(trials) == 4
    for trial in trials:
        assert trial.tags[TAG_GPU] in ("0", "1")
        assert trial.tags["seen.gpu"] == trial.tags[TAG_GPU]
    # Two devices: never more than two trials at once, never two on one device.
    assert _max_overlap(trials) <= 2
    for device in ("0", "1"):
        assert _max_overlap([t for t in trials if t.tags[TAG_GPU] == device]) <= 1


def test_runs_cancel_parent_kills_the_tree_and_resume_continues(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    process = start_cli(
        "sweep",
        str(project),
        "-P",
        "x=0.1,0.2,0.3,0.4",
        "-P",
        "sleep=120",
        "--max-parallel",
        "2",
        "--metric",
        "loss",
    )
    wait_for(lambda: len(parents("sweep")) == 1, what="the parent run")
    parent_id = parents("sweep")[0].run_id
    wait_for(lambda: len(running_children(parent_id)) == 2, what="two running trials")
    cancelled = cli("runs", "cancel", parent_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "KILLED" in cancelled.stdout
    _, err = stop(process, None)
    assert process.returncode == 128 + signal.SIGTERM, err
    killed = children(parent_id)
    assert [r.info.status for r in killed] == [RunStatus.KILLED, RunStatus.KILLED]
    assert get_store().get_run(parent_id).info.status == RunStatus.KILLED

    resumed = cli("sweep", "--resume", parent_id, FAST="1")
    assert resumed.returncode == 0, resumed.stderr
    runs = children(parent_id)
    assert len(runs) == 6  # the two killed ones, then all four trials
    finished = [r for r in runs if r.info.status == RunStatus.FINISHED]
    assert sorted(int(r.tags[TAG_TRIAL]) for r in finished) == [0, 1, 2, 3]
    retried = {r.tags.get(TAG_RETRY_OF) for r in finished} - {None}
    assert retried == {r.run_id for r in killed}
    parent = get_store().get_run(parent_id)
    assert parent.info.status == RunStatus.FINISHED
    assert parent.tags[TAG_BEST_RUN] in {r.run_id for r in finished}


def test_resume_after_the_sweep_process_died_fails_and_reruns_dead_trials(
    tmp_path: Path,
) -> None:
    project = trial_project(tmp_path / "proj")
    process = start_cli("sweep", str(project), "-P", "x=0.1,0.2,0.3", "-P", "sleep=120")
    wait_for(lambda: len(parents("sweep")) == 1, what="the parent run")
    parent_id = parents("sweep")[0].run_id
    wait_for(lambda: len(running_children(parent_id)) == 1, what="a running trial")
    os.kill(process.pid, signal.SIGKILL)  # the scheduler alone: its trial's command lives on
    process.communicate(timeout=60)
    (dead,) = running_children(parent_id)
    orphans = cli("runs", "list", "--status", "ORPHANED")
    assert parent_id in orphans.stdout and dead.run_id in orphans.stdout
    reaped = cli("runs", "reap")  # settles the parent and its trial: both FAILED
    assert reaped.returncode == 0, reaped.stderr
    assert get_store().get_run(parent_id).info.status == RunStatus.FAILED

    resumed = cli("sweep", "--resume", parent_id, FAST="1")
    assert resumed.returncode == 0, resumed.stderr
    store = get_store()
    reaped = store.get_run(dead.run_id)
    assert reaped.info.status == RunStatus.FAILED
    assert "reaped" in reaped.tags[TAG_ERROR]
    finished = [r for r in children(parent_id) if r.info.status == RunStatus.FINISHED]
    assert sorted(int(r.tags[TAG_TRIAL]) for r in finished) == [0, 1, 2]
    assert any(r.tags.get(TAG_RETRY_OF) == dead.run_id for r in finished)
    assert store.get_run(parent_id).info.status == RunStatus.FINISHED


def test_optuna_sweep_cancelled_then_resumed_counts_towards_its_total(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    process = start_cli(
        "sweep",
        str(project),
        "-P",
        "x=uniform(0,1)",
        "-P",
        "sleep=120",
        "--method",
        "optuna",
        "--metric",
        "loss",
        "--max-runs",
        "4",
        "--seed",
        "1",
        "--max-parallel",
        "2",
    )
    wait_for(lambda: len(parents("sweep")) == 1, what="the parent run")
    parent_id = parents("sweep")[0].run_id
    wait_for(lambda: len(running_children(parent_id)) == 2, what="two running trials")
    stop(process, signal.SIGINT)
    assert process.returncode == 130
    assert {r.info.status for r in children(parent_id)} == {RunStatus.KILLED}

    resumed = cli("sweep", "--resume", parent_id, FAST="1")
    assert resumed.returncode == 0, resumed.stderr
    finished = [r for r in children(parent_id) if r.info.status == RunStatus.FINISHED]
    assert len(finished) == 4  # the cap counts every trial, the re-run ones included
    numbers = sorted(int(r.tags[TAG_TRIAL]) for r in finished)
    assert numbers == [0, 1, 2, 3]
    assert get_store().get_run(parent_id).info.status == RunStatus.FINISHED


def test_python_handle_cancel_kills_running_trials_then_the_parent(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    sweep = mlproj.sweep(
        str(project), parameters={"x": [0.1, 0.2, 0.3], "sleep": 120}, max_parallel=2
    )
    wait_for(lambda: len(running_children(sweep.parent_run_id)) == 2, what="two running trials")
    sweep.cancel()
    statuses = [r.info.status for r in children(sweep.parent_run_id)]
    assert statuses == [RunStatus.KILLED, RunStatus.KILLED]  # the third never started
    assert get_store().get_run(sweep.parent_run_id).info.status == RunStatus.KILLED
    assert sweep.wait() is False


def test_a_terminal_gets_a_live_progress_line(tmp_path: Path) -> None:
    import pty

    project = trial_project(tmp_path / "proj")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [PY, "-m", "mlproj", "sweep", str(project), "-P", "x=0.1,0.3", "--metric", "loss"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    process.communicate(timeout=300)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the terminal's last writer is gone
        while chunk := os.read(controller, 65536):
            seen += chunk
    os.close(controller)
    assert process.returncode == 0
    text = seen.decode()
    assert "\rsweep 0/2 done" in text.replace("\x1b[2K", "")
    assert "sweep 2/2 done, 0 running, 0 failed; best loss=1 (trial 1)" in text


def test_secrets_in_the_backend_config_are_not_stored_on_the_parent() -> None:
    """What a parent run keeps of a backend config (a Ray runtime_env's env_vars, a cluster
    token): secret-looking values become ***, and resuming then asks for the config again.
    The local backend accepts only `timeout`, so this is checked on the functions the sweep
    and pipeline parents store their config through."""
    from mlproj.errors import ExecutionException
    from mlproj.orchestration.scheduler import check_resumable_config, stored_config

    config = {
        "timeout": 60,
        "api_token": "s3cr3t-value",
        "runtime_env": {"env_vars": {"HF_TOKEN": "s3cr3t-value", "LEVEL": "debug"}},
    }
    kept = stored_config(config)
    assert kept is not None
    assert "s3cr3t-value" not in json.dumps(kept)
    assert kept["timeout"] == 60 and kept["runtime_env"]["env_vars"]["LEVEL"] == "debug"
    with pytest.raises(ExecutionException, match="-c/--backend-config"):
        check_resumable_config(kept, "0123")
    check_resumable_config(stored_config({"timeout": 60}), "0123")  # nothing hidden: resumable


def test_stored_uris_carry_no_credentials() -> None:
    from mlproj.orchestration.scheduler import stored_uri

    assert stored_uri("https://user:tok3n@example.com/org/repo.git") == (
        "https://example.com/org/repo.git"
    )
    assert stored_uri("/abs/path") == "/abs/path"


def test_failed_trials_are_retried_as_new_runs_of_the_same_trial(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    marks = tmp_path / "marks"
    marks.mkdir()
    done = cli(
        "sweep",
        str(project),
        "-P",
        "x=0.1,0.2",
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--metric",
        "loss",
        FAIL_ONCE_DIR=str(marks),
    )
    assert done.returncode == 0, done.stderr
    (parent,) = parents("sweep")
    runs = children(parent.run_id)
    by_trial: dict[str, list] = {}
    for run in runs:
        by_trial.setdefault(run.tags[TAG_TRIAL], []).append(run)
    assert sorted(by_trial) == ["0", "1"]
    for first, second in by_trial.values():
        assert (first.info.status, second.info.status) == ("FAILED", "FINISHED")
        assert second.tags[TAG_RETRY_OF] == first.run_id
        assert (first.tags["mlproj.attempt"], second.tags["mlproj.attempt"]) == ("1", "2")
    assert "retry 1 of 1" in done.stderr
    assert parent.info.status == RunStatus.FINISHED


def test_trials_start_from_the_environment_the_sweep_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "envproj"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: envproj\nentry_points:\n  main:\n    parameters: {x: {default: 0}}\n"
        '    command: "printenv SWEEP_ENV_PROBE MLFLOW_RUN_ID > seen-{x}.txt"\n'
    )
    monkeypatch.setenv("SWEEP_ENV_PROBE", "from-the-caller")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = mlproj.sweep(str(project), parameters={"x": "0,1,2"}, max_parallel=2, synchronous=True)
    assert sorted(str(run.info.status) for run in result.runs) == ["FINISHED"] * 3
    for run in result.runs:
        number = run.tags[TAG_TRIAL]
        probe, run_id = (project / f"seen-{number}.txt").read_text().split()
        assert probe == "from-the-caller"
        assert run_id == run.info.run_id  # each trial still gets its own run's binding


def test_the_next_trial_is_checked_and_opened_only_when_its_slot_frees(tmp_path: Path) -> None:
    """The scheduler prepares the next trial while the slots are busy; what it finds then is
    not final (a file a trial needs may appear meanwhile), and no run opens before its slot."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "present").touch()
    (project / "MLproject").write_text(
        textwrap.dedent(
            """\
            name: ahead
            entry_points:
              main:
                parameters:
                  d: {type: path}
                  s: {type: float, default: 0}
                command: "test -f {d} && sleep {s} && touch late"
            """
        )
    )
    # Trial 1 needs `late`, which trial 0 makes at its end.
    process = start_cli("sweep", ".", "-P", "d=present,late", "-P", "s=1.5", cwd=project)
    wait_for(lambda: len(parents("sweep")) == 1, what="the parent run")
    parent_id = parents("sweep")[0].run_id
    wait_for(lambda: len(running_children(parent_id)) == 1, what="trial 0 running")
    for _ in range(5):  # trial 1 is ready by now, but its run is not opened
        assert len(children(parent_id)) == 1
        time.sleep(0.1)
    out, err = stop(process, None)
    assert process.returncode == 0, err
    trials = children(parent_id)
    assert [t.tags[TAG_TRIAL] for t in trials] == ["0", "1"]
    assert [t.info.status for t in trials] == [RunStatus.FINISHED, RunStatus.FINISHED], err


def test_trials_end_with_their_commands_not_with_daemons_they_left(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: d\nentry_points:\n  main:\n    parameters: {x: int}\n"
        '    command: "(sleep 68 &) ; echo trial {x}"\n'
    )
    started = time.monotonic()
    done = cli("sweep", str(project), "-P", "x=1,2,3", "--max-parallel", "2",
               MLPROJ_OUTPUT_LINGER="1")  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 30  # not three daemons' 60 s
        (parent,) = parents("sweep")
        trials = children(parent.run_id)
        assert [t.info.status for t in trials] == [RunStatus.FINISHED] * 3
        for trial in trials:
            assert trial.info.end_time is not None
            assert trial.info.end_time - trial.info.start_time < 900
            artifacts = get_store().local_artifact_dir(trial.run_id)
            assert artifacts is not None
            text = (artifacts / "mlproj" / "output.log").read_text()
            assert f"trial {trial.params['x']}" in text and "still hold its output" in text
    finally:
        subprocess.run(["pkill", "-f", "sleep 68"], check=False)
