"""`mlproj runs cancel <trial>` on a real sweep: that trial alone ends KILLED, the sweep goes
on (the trial counts towards --max-failures and is not retried); and what a trial prints is
kept in its log, not on the sweep's console."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mlproj.statuses import RunStatus
from mlproj.tags import TAG_CANCEL, TAG_ERROR, TAG_RETRY_OF, TAG_TRIAL
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


def _slow_trial(parent_id: str) -> str:
    """The run id of trial 0 (the one that sleeps) once its command runs."""

    def started() -> bool:
        return any(
            r.tags.get(TAG_TRIAL) == "0" and "mlproj.child.start" in r.tags
            for r in running_children(parent_id)
        )

    wait_for(started, what="trial 0's command")
    return next(r.run_id for r in running_children(parent_id) if r.tags.get(TAG_TRIAL) == "0")


def test_cancel_of_one_trial_stops_it_alone_and_the_sweep_goes_on(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    # Trial 0 sleeps; trials 1-3 end at once. --retries: a cancelled trial is not retried.
    process = start_cli(
        "sweep", str(project), "-P", "sleep=120,0,0.01,0.02", "--max-parallel", "2",
        "--retries", "2", "--retry-delay", "0", "--metric", "loss",
    )  # fmt: skip
    wait_for(lambda: len(parents("sweep")) == 1, what="the parent run")
    parent_id = parents("sweep")[0].run_id
    trial = _slow_trial(parent_id)

    cancelled = cli("runs", "cancel", trial)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"Run {trial}: KILLED" in cancelled.stdout
    out, err = stop(process, None)  # the sweep ends by itself
    assert process.returncode == 0, err
    assert "trial 0 cancelled" in err

    store = get_store()
    runs = children(parent_id)
    assert len(runs) == 4  # no retry of the cancelled trial
    assert not any(r.tags.get(TAG_RETRY_OF) for r in runs)
    by_trial = {int(r.tags[TAG_TRIAL]): r for r in runs}
    killed = by_trial[0]
    assert killed.run_id == trial
    assert killed.info.status == RunStatus.KILLED
    assert killed.tags[TAG_ERROR] == "cancelled (mlproj runs cancel)"
    assert TAG_CANCEL in killed.tags
    assert [by_trial[n].info.status for n in (1, 2, 3)] == [RunStatus.FINISHED] * 3
    parent = store.get_run(parent_id)
    assert parent.info.status == RunStatus.FINISHED  # the sweep was not cancelled
    assert parent.info.end_time is not None


def test_cancelled_trial_counts_towards_max_failures(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    process = start_cli(
        "sweep", str(project), "-P", "sleep=120,0,0.01", "--max-failures", "1",
    )  # fmt: skip
    wait_for(lambda: len(parents("sweep")) == 1, what="the parent run")
    parent_id = parents("sweep")[0].run_id
    trial = _slow_trial(parent_id)
    assert cli("runs", "cancel", trial).returncode == 0
    _, err = stop(process, None)
    assert process.returncode != 0, err
    runs = children(parent_id)
    assert [r.run_id for r in runs] == [trial]  # nothing started after it
    assert runs[0].info.status == RunStatus.KILLED
    parent = get_store().get_run(parent_id)
    assert parent.info.status == RunStatus.FAILED
    assert "max-failures" in parent.tags[TAG_ERROR]

    # Resume keeps the trial cancelled on purpose (it is not run again) and stops at once.
    resumed = cli("sweep", "--resume", parent_id, "--max-parallel", "1")
    assert "0 to run again" in resumed.stderr, resumed.stderr
    assert [r.run_id for r in children(parent_id)] == [trial]


def test_trial_output_goes_to_its_log_not_the_sweep_console(tmp_path: Path) -> None:
    project = tmp_path / "talk"
    project.mkdir()
    (project / "talk.py").write_text(
        textwrap.dedent(
            """\
            import sys
            print("out-line", sys.argv[1], flush=True)
            print("err-line", sys.argv[1], file=sys.stderr, flush=True)
            print("out-again", sys.argv[1], flush=True)
            sys.exit(0 if sys.argv[1] != "2" else 7)
            """
        )
    )
    (project / "MLproject").write_text(
        textwrap.dedent(
            f"""\
            name: talk
            entry_points:
              main:
                parameters: {{n: int}}
                command: "{PY} talk.py {{n}}"
            """
        )
    )
    done = cli("sweep", str(project), "-P", "n=range(0,4)", "--max-parallel", "2")
    assert "out-line" not in done.stdout + done.stderr
    parent_id = parents("sweep")[0].run_id
    store = get_store()
    for run in children(parent_id):
        n = run.tags[TAG_TRIAL]
        artifacts = store.local_artifact_dir(run.run_id)
        assert artifacts is not None
        log = (artifacts / "mlproj" / "output.log").read_text()
        # One pipe for both streams: the log keeps the order the command wrote in.
        assert log == f"out-line {n}\nerr-line {n}\nout-again {n}\n"
        expected = RunStatus.FAILED if n == "2" else RunStatus.FINISHED
        assert run.info.status == expected
    failed = next(r for r in children(parent_id) if r.tags[TAG_TRIAL] == "2")
    assert failed.tags[TAG_ERROR] == "command exited with code 7"
