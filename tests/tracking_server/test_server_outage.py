"""The tracking server goes away in the middle of a run and comes back later.

A real MLflow server is stopped and started again 30 s later, with MLflow's default retry
budget. The command is never held up by the outage; the run's end status, its error tag, the
metric and params sent before and its output log land once the server is back: replayed by the
next mlproj command, or `mlproj runs sync`. No run is created twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.shared_servers import MlflowServer

pytestmark = pytest.mark.slow

MLPROJECT = """name: outage
entry_points:
  main:
    parameters:
      marker: {type: string}
      code: {type: int, default: 0}
      rate: {type: float, default: 1}
    command: "python work.py {marker} {code}"
"""
# Logs a metric while the server is up (with a client of its own: MLflow's fluent API would end
# the run at exit, retrying against the stopped server), prints, waits until the test says so
# (the marker file), then ends.
WORK = """import os, pathlib, sys, time
from mlflow.tracking import MlflowClient
MlflowClient().log_metric(os.environ["MLFLOW_RUN_ID"], "before", 1.5)
print("before the outage", flush=True)
marker = pathlib.Path(sys.argv[1])
deadline = time.time() + 180
while not marker.exists() and time.time() < deadline:
    time.sleep(0.1)
print("after the outage", flush=True)
sys.exit(int(sys.argv[2]))
"""
OUTAGE_S = 30.0


def _project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "MLproject").write_text(MLPROJECT)
    (folder / "work.py").write_text(WORK)
    return folder


def _env(server: MlflowServer, home: Path) -> dict[str, str]:
    # MLflow's default retry budget (a few seconds of backoff): the outage outlasts it, as a
    # real one does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_")}
    return {**env, "MLFLOW_TRACKING_URI": server.url, "MLPROJ_HOME": str(home)}


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
    history = client.get_metric_history(run.info.run_id, "before")
    out.append({{"id": run.info.run_id, "status": run.info.status, "end": run.info.end_time,
                "error": run.data.tags.get("mlproj.error"), "log": open(path).read(),
                "marker": run.data.params.get("marker"), "params": run.data.params,
                "before": [m.value for m in history]}})
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
    runs: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return runs


def _wait_for_output(home: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in p.read_text(errors="replace") for p in home.rglob("output.log")):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in a run log under {home}")


def _start(project: Path, marker: Path, code: int, env: dict[str, str], *extra: str) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "-P", f"marker={marker}"]
        + ["-P", f"code={code}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_a_thirty_second_outage_loses_nothing(tmp_path: Path) -> None:
    """The server is stopped while four runs go and started again 30 s later. Two synchronous
    runs (one FINISHED, one FAILED) and a detached one end during the outage: their commands
    are not held up, their ends wait in the journal, and the first command after the outage
    sends them. A fourth run goes on through the outage and ends once the server is back."""
    workdir = tmp_path / "server"
    workdir.mkdir()
    db = f"sqlite:///{workdir / 'mlflow.db'}"
    server = MlflowServer(db, workdir)
    home = tmp_path / "home"
    env = _env(server, home)
    project = _project(tmp_path)
    down, back = tmp_path / "server-is-down", tmp_path / "server-is-back"
    ending = {code: _start(project, down, code, env) for code in (0, 3)}
    spanning = _start(project, back, 0, env)
    detached = _mlproj("run", str(project), "--no-wait", "-P", f"marker={down}", env=env)
    assert detached.returncode == 0, detached.stderr
    clients = [*ending.values(), spanning]
    back_server: MlflowServer | None = None
    try:
        deadline = time.monotonic() + 120
        while len(list(home.rglob("output.log"))) < 4 or not all(
            "before the outage" in p.read_text(errors="replace") for p in home.rglob("output.log")
        ):
            assert time.monotonic() < deadline, "the runs never started"
            time.sleep(0.2)
        server.stop()
        stopped = time.monotonic()
        down.touch()
        # Not held up: the runs that ended exit, their ends journaled, while the server is down.
        for code, client in ending.items():
            _, err = client.communicate(timeout=max(1.0, OUTAGE_S - (time.monotonic() - stopped)))
            assert client.returncode == (0 if code == 0 else 1), err
            assert "runs sync" in err and "unreachable" in err, err
        while len(list((home / "journal").glob("*.jsonl"))) < 3:
            assert time.monotonic() - stopped < OUTAGE_S, "the detached run's end was held up"
            time.sleep(0.2)
        # `runs sync` says what still waits (one quick try: the retry budget is the user's).
        quick = {**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        waiting = _mlproj("runs", "sync", env=quick)
        assert waiting.returncode == 1 and "still waiting" in waiting.stderr, waiting.stderr
        assert time.monotonic() - stopped < OUTAGE_S
        time.sleep(OUTAGE_S - (time.monotonic() - stopped))
        back_server = MlflowServer(db, workdir, port=server.port)
        restarted_ms = time.time() * 1000
        back.touch()
        _, err = spanning.communicate(timeout=120)
        assert spanning.returncode == 0, err
        listed = _mlproj("runs", "list", env=env)  # any command replays the journals first
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.count("sent the updates of run") == 3, listed.stderr
        assert not list((home / "journal").glob("*.jsonl"))
        runs = _read_with_mlflow(back_server.url)
        assert len(runs) == 4, runs  # nothing created twice
        by_marker: dict[str, list[dict[str, object]]] = {}
        for run in runs:
            by_marker.setdefault(str(run["marker"]), []).append(run)
            # The metric sent before the outage is there once; the params are all there.
            assert run["before"] == [1.5], run
            assert run["params"] == {
                "marker": run["marker"],
                "code": "3" if run["error"] else "0",
                "rate": "1",
            }, run
            assert "before the outage" in str(run["log"]) and "after the outage" in str(run["log"])
        (lasted,) = by_marker[str(back)]
        assert lasted["status"] == "FINISHED"
        assert int(str(lasted["end"])) >= restarted_ms
        ended = by_marker[str(down)]
        assert sorted(str(r["status"]) for r in ended) == ["FAILED", "FINISHED", "FINISHED"]
        for run in ended:  # the time the command ended, not the time of the replay
            assert int(str(run["end"])) < restarted_ms
        (failed,) = [r for r in ended if r["status"] == "FAILED"]
        assert "exited with code 3" in str(failed["error"])
        again = _mlproj("runs", "sync", env=env)
        assert again.returncode == 0 and "Nothing to send" in again.stdout
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.communicate()
        down.touch()
        back.touch()
        if back_server is not None:
            back_server.stop()
        server.stop()
