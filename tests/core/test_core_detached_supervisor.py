"""The detached supervisor (``python -m mlproj.local_run.supervisor``) run as a real process on a
real file store: whatever goes wrong between starting the command and waiting for it, the
command is never left running where ``mlproj runs reap`` cannot find it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mlproj.envs.base import LaunchPlan
from mlproj.local_run.identity import is_orphaned
from mlproj.local_run.supervisor import Job
from mlproj.tags import TAG_CHILD_PID, TAG_ERROR, TAG_PID
from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _new_run(store: TrackingStore) -> str:
    experiment_id = store.resolve_experiment()
    return store.create_run(experiment_id, run_name="detached", tags={}, user_id="me").run_id


def _start_supervisor(
    store: TrackingStore, run_id: str, workdir: Path, command: str
) -> subprocess.Popen[bytes]:
    job = Job(
        run_id=run_id,
        tracking_uri=store.tracking_uri,
        plan=LaunchPlan(argv=["bash", "-c", command], env=dict(os.environ), cwd=workdir),
        log_path=workdir / "output.log",
    )
    job_file = workdir / "job.json"
    job_file.write_text(job.to_json())
    with job_file.open("rb") as stdin:
        return subprocess.Popen(
            [sys.executable, "-m", "mlproj.local_run.supervisor"],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )


def _pid_from(path: Path, timeout: float = 5.0) -> int | None:
    """The pid the command wrote, if it got that far within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.05)
    return None


def test_store_error_recording_the_command_identity_stops_the_command(tmp_path: Path) -> None:
    store = get_store()
    run_id = _new_run(store)
    # A real store error at exactly that write: the tag's file cannot replace a folder.
    run_dir = store.local_artifact_dir(run_id)
    assert run_dir is not None
    (run_dir.parent / "tags" / TAG_CHILD_PID).mkdir()
    pid_file = tmp_path / "pid"
    proc = _start_supervisor(store, run_id, tmp_path, f"echo $$ > {pid_file}; exec sleep 300")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"Traceback" not in err, err.decode()
    pid = _pid_from(pid_file, timeout=1.0)
    assert pid is None or not _alive(pid)
    run = store.get_run(run_id)
    assert run.info.status == "FAILED"
    assert "could not record" in run.tags[TAG_ERROR]
    assert not is_orphaned(run)


def test_signal_right_after_the_start_stops_the_command_and_records_killed(
    tmp_path: Path,
) -> None:
    store = get_store()
    run_id = _new_run(store)
    pid_file = tmp_path / "pid"
    # The command signals its supervisor at once: the signal lands while the supervisor is
    # still recording who the command is, or just after.
    command = f"echo $$ > {pid_file}; kill -TERM $PPID; exec sleep 300"
    proc = _start_supervisor(store, run_id, tmp_path, command)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err.decode()
    pid = _pid_from(pid_file)
    assert pid is not None
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    run = store.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.tags[TAG_ERROR] == "cancelled"
    assert run.tags[TAG_PID] == str(proc.pid)  # it recorded itself before starting anything


def test_supervisor_records_itself_before_the_command_starts(tmp_path: Path) -> None:
    store = get_store()
    run_id = _new_run(store)
    seen = tmp_path / "seen"
    # The command reads its own run's tags: its supervisor's identity is there already.
    tags_dir = store.local_artifact_dir(run_id)
    assert tags_dir is not None
    command = f"cat {tags_dir.parent / 'tags' / TAG_PID} > {seen}"
    proc = _start_supervisor(store, run_id, tmp_path, command)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert seen.read_text() == str(proc.pid)
    assert store.get_run(run_id).info.status == "FINISHED"
