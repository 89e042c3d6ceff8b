"""``runs logs --follow`` returns only once the run's supervisor has recorded how it ended.

The race seen in CI: the log file did not exist yet, so follow waited on the store's status
alone, and a crashed script's own MLflow client had just ended the run FINISHED; follow
returned before the supervisor wrote FAILED. Here a real process stands in for the supervisor
(its pid, start time and boot id are the run's identity tags) and the store is real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj.local_run.identity import identity_tags
from mlproj.tags import TAG_LOG
from mlproj.tracking import get_store


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_follow_waits_for_the_supervisors_outcome(tmp_path: Path, kind: str) -> None:
    uri = (tmp_path / "mlruns").as_uri() if kind == "file" else f"sqlite:///{tmp_path / 'm.db'}"
    store = get_store(uri)
    run_id = store.create_run("0", run_name="r", tags={}, user_id="u").run_id
    supervisor = subprocess.Popen(["sleep", "60"])
    try:
        log = tmp_path / "logs" / "output.log"  # named in the tags, not written yet
        store.set_tags(run_id, {**identity_tags(supervisor.pid), TAG_LOG: str(log)})
        store.set_terminated(run_id, "FINISHED")  # what the project's own client wrote
        follow = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "runs", "logs", run_id, "--follow",
             "--tracking-uri", uri],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
        )  # fmt: skip
        time.sleep(2.0)
        assert follow.poll() is None, follow.communicate()  # the supervisor still runs
        log.parent.mkdir()
        log.write_bytes(b"Traceback: boom\n")  # the supervisor started the command
        time.sleep(1.0)
        assert follow.poll() is None
        store.set_tag(run_id, "mlproj.error", "command exited with code 1")
        store.set_terminated(run_id, "FAILED")  # the supervisor's outcome, then it exits
        supervisor.kill()
        supervisor.wait()
        out, err = follow.communicate(timeout=30)
    finally:
        supervisor.kill()
        supervisor.wait()
    assert follow.returncode == 0, err
    assert out == b"Traceback: boom\n"
    assert store.get_run(run_id).info.status == "FAILED"
