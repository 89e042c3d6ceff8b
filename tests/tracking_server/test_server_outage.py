"""The tracking server goes away in the middle of a run and comes back later.

The command is never held up by the outage; the run's end status, its error tag and its output
log land once the server is back: replayed by the next mlproj command, or `mlproj runs sync`.
No run is created twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared_servers import MlflowServer

pytestmark = pytest.mark.slow

MLPROJECT = """name: outage
entry_points:
  main:
    parameters:
      marker: {type: string}
      code: {type: int, default: 0}
    command: "python work.py {marker} {code}"
"""
# Prints, waits until the test has stopped the server (the marker file), then ends.
WORK = """import pathlib, sys, time
print("before the outage", flush=True)
marker = pathlib.Path(sys.argv[1])
deadline = time.time() + 120
while not marker.exists() and time.time() < deadline:
    time.sleep(0.1)
print("after the outage", flush=True)
sys.exit(int(sys.argv[2]))
"""


def _project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "MLproject").write_text(MLPROJECT)
    (folder / "work.py").write_text(WORK)
    return folder


def _env(server: MlflowServer, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.url,
        "MLPROJ_HOME": str(home),
        # A short retry budget: the outage outlasts it, as a real one outlasts the default.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0.1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",  # a loaded CI machine answers slowly
    }


def _mlproj(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _read_with_mlflow(url: str) -> list[dict[str, object]]:
    code = f"""
import json, mlflow
from mlflow.tracking import MlflowClient
client = MlflowClient({url!r})
out = []
for run in client.search_runs(["0"]):
    path = client.download_artifacts(run.info.run_id, "mlproj/output.log")
    out.append({{"id": run.info.run_id, "status": run.info.status, "end": run.info.end_time,
                "error": run.data.tags.get("mlproj.error"), "log": open(path).read()}})
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _wait_for_output(home: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in p.read_text(errors="replace") for p in home.rglob("output.log")):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in a run log under {home}")


@pytest.mark.parametrize("code", [0, 3])
def test_a_synchronous_run_ends_through_an_outage(tmp_path: Path, code: int) -> None:
    workdir = tmp_path / "server"
    workdir.mkdir()
    db = f"sqlite:///{workdir / 'mlflow.db'}"
    server = MlflowServer(db, workdir)
    home = tmp_path / "home"
    env = _env(server, home)
    marker = tmp_path / "server-is-down"
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlproj",
            "run",
            str(_project(tmp_path)),
            "-P",
            f"marker={marker}",
            "-P",
            f"code={code}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for_output(home, "before the outage")
        server.stop()
        marker.touch()
        started = time.monotonic()
        out, err = client.communicate(timeout=120)
        # Not held up: the command ended, the bookkeeping went to the journal within seconds.
        assert time.monotonic() - started < 30
        assert client.returncode == (0 if code == 0 else 1), err
        assert "runs sync" in err and "unreachable" in err, err
        assert list((home / "journal").glob("*.jsonl"))
    finally:
        if client.poll() is None:
            client.kill()
    back = MlflowServer(db, workdir, port=server.port)
    try:
        listed = _mlproj("runs", "list", env=env)  # any command replays the journal first
        assert listed.returncode == 0, listed.stderr
        assert "sent the updates of run" in listed.stderr
        assert not list((home / "journal").glob("*.jsonl"))
        (run,) = _read_with_mlflow(back.url)
        assert run["status"] == ("FINISHED" if code == 0 else "FAILED")
        assert "before the outage" in str(run["log"]) and "after the outage" in str(run["log"])
        if code:
            assert "exited with code 3" in str(run["error"])
        again = _mlproj("runs", "sync", env=env)
        assert again.returncode == 0 and "Nothing to send" in again.stdout
    finally:
        back.stop()


def test_a_detached_run_that_ends_while_the_server_is_down_lands_on_sync(tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    workdir.mkdir()
    db = f"sqlite:///{workdir / 'mlflow.db'}"
    server = MlflowServer(db, workdir)
    home = tmp_path / "home"
    env = _env(server, home)
    marker = tmp_path / "server-is-down"
    started = _mlproj(
        "run", str(_project(tmp_path)), "--no-wait", "-P", f"marker={marker}", env=env
    )
    assert started.returncode == 0, started.stderr
    _wait_for_output(home, "before the outage")
    server.stop()
    marker.touch()
    # The detached supervisor gives up on the server and journals the end, then exits.
    deadline = time.monotonic() + 60
    while not list((home / "journal").glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list((home / "journal").glob("*.jsonl"))
    down = _mlproj("runs", "sync", env=env)
    assert down.returncode == 1 and "still waiting" in down.stderr
    back = MlflowServer(db, workdir, port=server.port)
    try:
        synced = _mlproj("runs", "sync", env=env)
        assert synced.returncode == 0, synced.stderr
        # Sent by the replay every command starts with, or by `runs sync` itself.
        assert "sent: run" in synced.stdout or "sent the updates of run" in synced.stderr
        (run,) = _read_with_mlflow(back.url)
        assert run["status"] == "FINISHED"
        assert "after the outage" in str(run["log"])
    finally:
        back.stop()
