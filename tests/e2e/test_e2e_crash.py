"""Crashes at any moment: SIGKILL of ``mlproj run``, of the detached supervisor, or of a Python
caller of ``mlproj.run``, at random points of the whole lifecycle (start-up, fetch from Git, run
opened, command running, output upload, status written), 200 times.

Afterwards, with no command that a user would need to know about: the next mlproj command that
looks at runs (``runs list``) settles what the crashes left; no process of those runs is left;
every run that was opened is FINISHED, FAILED or KILLED; and real MLflow reads the store.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj.statuses import TERMINAL_STATUSES
from mlproj.tracking import get_store

pytestmark = pytest.mark.slow

KILLS = 200
AT_ONCE = 10
MARKER = "mlproj-crash-test-marker"
MLPROJECT = f"""name: crash
entry_points:
  main:
    parameters:
      seconds: {{type: float, default: 0.5}}
    command: "python work.py {MARKER} {{seconds}}"
"""
WORK = "import sys, time\nprint('working', flush=True)\ntime.sleep(float(sys.argv[2]))\n"
CALLER = """import sys
import mlproj
mlproj.run(sys.argv[1], parameters={"seconds": sys.argv[2]}, env_manager="local")
"""


def _marked_processes() -> list[int]:
    """Pids of live processes whose command line carries the test's marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if MARKER.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def git(*args: str, cwd: Path | None = None) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
    )


def _sources(tmp_path: Path) -> tuple[str, str]:
    """The same project as a local folder and as a Git repository (file:// URL)."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "MLproject").write_text(MLPROJECT)
    (folder / "work.py").write_text(WORK)
    git("init", "-q", str(folder))
    git("add", ".", cwd=folder)
    git("commit", "-qm", "crash project", cwd=folder)
    bare = tmp_path / "proj.git"
    git("clone", "-q", "--bare", str(folder), str(bare))
    return str(folder), bare.as_uri()


def _victim(kind: str, uri: str, seconds: float, env: dict[str, str]) -> subprocess.Popen[bytes]:
    mlproj = [sys.executable, "-m", "mlproj", "run", uri, "-P", f"seconds={seconds}", "--quiet"]
    if kind == "python-caller":
        argv = [sys.executable, "-c", CALLER, uri, str(seconds)]
    elif kind == "supervisor":
        argv = [*mlproj, "--no-wait", "--env-manager", "local"]
    else:
        argv = [*mlproj, "--env-manager", "local"]
    # Only the detached kind's output is read (its run id): the others print nothing we need.
    out = subprocess.PIPE if kind == "supervisor" else subprocess.DEVNULL
    return subprocess.Popen(
        argv, stdout=out, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )


def _kill_supervisor_of(client: subprocess.Popen[bytes], tracking_uri: str, delay: float) -> None:
    """``--no-wait`` prints the run id once the detached supervisor owns the run: kill that
    supervisor after ``delay`` (or the client itself, if it has not got that far)."""
    try:
        out, _ = client.communicate(timeout=delay + 0.2)
    except subprocess.TimeoutExpired:
        client.kill()
        client.communicate()  # reaps it and closes its pipe
        return
    run_id = out.decode().strip().splitlines()[-1] if out.strip() else ""
    if not run_id:
        return
    tags = get_store(tracking_uri).get_run(run_id).tags
    pid = int(tags.get("mlproj.supervisor.pid", "0") or 0)
    time.sleep(random.uniform(0, 1.0))  # noqa: S311 - test randomness
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had finished already: also a moment worth testing


def test_sigkill_at_any_moment_leaves_nothing_running(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MLPROJ_CRASH_SEED", "20261202")))
    folder, git_url = _sources(tmp_path)
    tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
    env = dict(os.environ)
    kinds = ["cli", "supervisor", "python-caller"]
    killed = 0
    while killed < KILLS:
        victims = []
        for _ in range(AT_ONCE):
            kind = kinds[killed % len(kinds)]
            uri = git_url if rng.random() < 0.3 else folder
            seconds = rng.choice([0.0, 0.2, 1.0])
            delay = rng.uniform(0.0, 2.5)
            victims.append((kind, _victim(kind, uri, seconds, env), delay))
            killed += 1
        started = time.monotonic()
        for kind, process, delay in sorted(victims, key=lambda v: v[2]):
            if kind == "supervisor":
                _kill_supervisor_of(
                    process, tracking_uri, max(0.0, delay - (time.monotonic() - started))
                )
                continue
            time.sleep(max(0.0, delay - (time.monotonic() - started)))
            if process.poll() is None:
                # mlproj alone: the command it started runs on in its own process group, as
                # it does when mlproj itself crashes.
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
    # The next command that looks at runs settles what the crashes left behind.
    listed = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "list", "--max-results", "10000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    store = get_store(tracking_uri)
    runs = store.search_runs([store.resolve_experiment()], max_results=10 * KILLS)
    assert runs, "no run was ever opened: the kills came too early to test anything"
    not_ended = [(r.run_id, r.info.status) for r in runs if r.info.status not in TERMINAL_STATUSES]
    assert not not_ended, f"{len(not_ended)} of {len(runs)} runs not ended: {not_ended[:5]}"
    deadline = time.monotonic() + 10
    while _marked_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked_processes() == [], "a command of a crashed run is still running"
    statuses = {str(r.info.status) for r in runs}
    print(f"\ncrash: {KILLS} kills, {len(runs)} runs opened, statuses {sorted(statuses)}")
    # Real MLflow reads every run of the store.
    code = (
        "import json, sys\nfrom mlflow.tracking import MlflowClient\n"
        "runs = MlflowClient().search_runs(['0'], max_results=5000)\n"
        "print(json.dumps(sorted({r.info.status for r in runs}) + [len(runs)]))\n"
    )
    read = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**env, "MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    assert read.returncode == 0, read.stderr[-2000:]
    *seen, count = json.loads(read.stdout.strip().splitlines()[-1])
    assert count == len(runs)
    assert set(seen) <= set(TERMINAL_STATUSES)
