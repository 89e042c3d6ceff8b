"""Crashes at any moment: SIGKILL of ``mlproj run``, of the detached supervisor, or of a Python
caller of ``mlproj.run``, at every point of the lifecycle, 200 times into the file store and 200
times into MLflow's default SQLite store.

Each victim is killed when it is seen in the phase chosen for it: start-up, a Git fetch (a
``git`` child; the repository gets a new commit before each such victim, so there is always
something to fetch), an environment build (a ``uv`` child; each such victim asks for an
environment not built yet), the run opened and its command starting (the ``running`` line), the
command running, or the run ending (the command released, then a kill within milliseconds:
output and status being written). Only a SIGKILL that reached a live victim counts.

Commands wait to be released (up to two minutes), so a command its crashed mlproj left behind
is still there when the test looks. Afterwards, with no command a user would need to know
about: the next ``mlproj runs list`` (default options) settles what the crashes left; no process
of those runs is left; every run that was opened is FINISHED, FAILED or KILLED; and real MLflow
reads the store.
"""

from __future__ import annotations

import collections
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj.statuses import TERMINAL_STATUSES
from mlproj.tags import TAG_ERROR
from mlproj.tracking import get_store

pytestmark = pytest.mark.slow

KILLS = {"file": 200, "sqlite": 200}
# For a quicker look while working on it: CRASH_KILLS=20 pytest ...
KILLS = {k: int(os.environ.get("CRASH_KILLS", v)) for k, v in KILLS.items()}
AT_ONCE = 8
MARKER = "mlproj-crash-test-marker"
KINDS = ("cli", "supervisor", "python-caller")
# The phases each kind of victim can be killed in: a detached supervisor starts after the
# fetch and the environment build, which its `mlproj run --no-wait` client does.
PHASES = {
    "cli": ("start-up", "fetch", "env-build", "starting", "running", "ending"),
    "python-caller": ("start-up", "fetch", "env-build", "starting", "running", "ending"),
    "supervisor": ("starting", "running", "ending"),
}
MLPROJECT = f"""name: crash
entry_points:
  main:
    parameters:
      hold: {{type: string}}
    command: "python work.py {MARKER} {{hold}}"
"""
# Runs until the test releases it (the hold file appears), as a long training would.
WORK = """import pathlib, sys, time
print("working", flush=True)
hold = pathlib.Path(sys.argv[2])
deadline = time.time() + 120
while not hold.exists() and time.time() < deadline:
    time.sleep(0.02)
print("released", flush=True)
"""
CALLER = """import sys
import mlproj
mlproj.run(sys.argv[1], parameters={"hold": sys.argv[2]}, env_manager=sys.argv[3])
"""


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


class Sources:
    """The project as a local folder, as a Git repository that gets a new commit for every
    fetch victim, and as a folder whose python_env.yaml asks for a new environment each time."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "proj"
        self.folder.mkdir()
        (self.folder / "MLproject").write_text(MLPROJECT)
        (self.folder / "work.py").write_text(WORK)
        git("init", "-q", str(self.folder))
        git("add", ".", cwd=self.folder)
        git("commit", "-qm", "crash project", cwd=self.folder)
        self.bare = root / "proj.git"
        git("clone", "-q", "--bare", str(self.folder), str(self.bare))
        # New commits are made in a clone of their own: mlproj reads the folder's Git state
        # (git status) while our commits would need its index.
        self.clone = root / "proj-clone"
        git("clone", "-q", str(self.bare), str(self.clone))
        self.commits = 0
        self.envs = 0
        self.env_folder = root / "proj-env"
        self.env_folder.mkdir()
        (self.env_folder / "MLproject").write_text(MLPROJECT + "python_env: python_env.yaml\n")
        (self.env_folder / "work.py").write_text(WORK)

    def new_commit(self) -> str:
        self.commits += 1
        (self.clone / "version.txt").write_text(str(self.commits))
        git("add", ".", cwd=self.clone)
        git("commit", "-qm", f"version {self.commits}", cwd=self.clone)
        git("push", "-q", "origin", "main", cwd=self.clone)
        return self.bare.as_uri()

    def new_environment(self) -> str:
        # Another version bound each time: another environment, the same (cached) wheel.
        self.envs += 1
        (self.env_folder / "python_env.yaml").write_text(
            f'python: ">=3.10"\ndependencies:\n  - six>=1.{self.envs % 17},!=0.{self.envs}\n'
        )
        return str(self.env_folder)


class Victim:
    """One mlproj process to kill, the phase to kill it in, and what was seen of it."""

    def __init__(self, number: int, kind: str, phase: str, sources: Sources, root: Path) -> None:
        self.number, self.kind, self.phase = number, kind, phase
        self.hold = root / "holds" / str(number)
        self.seen = "start-up"
        self.killed_in: str | None = None
        self.target: int | None = None  # the pid to kill once its phase is reached
        self.kill_at: float | None = None
        self.spawned = time.monotonic()
        env_manager = "local"
        if phase == "fetch":
            uri = sources.new_commit()
        elif phase == "env-build":
            uri, env_manager = sources.new_environment(), "uv"
        else:
            uri = str(sources.folder)
        if kind == "python-caller":
            argv = [sys.executable, "-c", CALLER, uri, str(self.hold), env_manager]
        else:
            argv = [sys.executable, "-m", "mlproj", "run", uri, "-P", f"hold={self.hold}"]
            argv += ["--env-manager", env_manager]
            if kind == "supervisor":
                argv.append("--no-wait")
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "CRASH_VICTIM": str(number)},
            start_new_session=True,
        )
        if phase == "start-up":
            self.kill_at = self.spawned + random.uniform(0.0, 0.25)  # noqa: S311
            self.target = self.process.pid

    def done(self) -> bool:
        if self.killed_in is not None:
            return True
        if self.kind != "supervisor" or self.process.poll() is None:
            return self.process.poll() is not None
        # The --no-wait client has exited: the victim is the supervisor it started.
        if self.target is None:
            return time.monotonic() - self.spawned > 20  # it never started one
        return not _alive(self.target)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def _processes() -> dict[int, tuple[int, bytes]]:
    """Live processes: pid -> (parent pid, command line)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                argv = cmdline.read()
        except OSError:
            continue
        if fields[0] not in (b"Z", b"X"):
            found[int(entry.name)] = (int(fields[1]), argv)
    return found


def _victim_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"CRASH_VICTIM="):
            return int(item.split(b"=", 1)[1])
    return None


def _observe(victims: dict[int, Victim], stderr_lines: dict[int, bytes]) -> None:
    """Note the phase each live victim has reached, and when to kill it."""
    procs = _processes()
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, (ppid, _) in procs.items():
        children[ppid].append(pid)
    for pid, (_, argv) in procs.items():
        if b"mlproj.local_run.supervisor" in argv or MARKER.encode() in argv:
            number = _victim_of(pid)
            victim = victims.get(number) if number is not None else None
            if victim is None or victim.done():
                continue
            if MARKER.encode() in argv:
                victim.seen = "running" if victim.seen != "ending" else "ending"
            elif victim.kind == "supervisor" and victim.target is None:
                victim.target = pid  # the detached supervisor, just started
                victim.seen = "starting"
    for victim in victims.values():
        if victim.done():
            continue
        if victim.kind != "supervisor" and b": running " in stderr_lines.get(victim.number, b""):
            victim.seen = max(victim.seen, "starting", key=_order)
        stack, below = [victim.process.pid], []
        while stack:
            pid = stack.pop()
            below.append(pid)
            stack.extend(children.get(pid, []))
        names = {os.path.basename(procs[p][1].split(b"\0")[0]) for p in below if p in procs}
        if victim.seen == "start-up" and b"git" in names:
            victim.seen = "fetch"
        if victim.seen in ("start-up", "fetch") and b"uv" in names:
            victim.seen = "env-build"


def _order(phase: str) -> int:
    return ("start-up", "fetch", "env-build", "starting", "running", "ending").index(phase)


def _arm(victim: Victim, now: float) -> None:
    """Once a victim has reached its phase, choose the moment to kill it."""
    if victim.kill_at is not None or victim.done():
        return
    if victim.phase == "ending":
        if victim.seen == "running":
            victim.hold.touch()  # the command ends now: output and status are being written
            victim.seen = "ending"
            victim.kill_at = now + random.uniform(0.0, 0.04)  # noqa: S311
    elif _order(victim.seen) >= _order(victim.phase):
        # Reached (or, between two looks, passed) its phase: killed where it is now.
        jitter = {"running": 0.3, "starting": 0.01}.get(victim.phase, 0.05)
        victim.kill_at = now + random.uniform(0.0, jitter)  # noqa: S311
    if victim.kill_at is not None and victim.target is None:
        if victim.kind == "supervisor":
            victim.kill_at = None  # its supervisor has not been seen yet
        else:
            victim.target = victim.process.pid


def _kill(victim: Victim) -> bool:
    """SIGKILL the victim's target; True when it was alive to receive it."""
    if victim.target is None:
        victim.target = victim.process.pid
    if not _alive(victim.target):
        return False
    try:
        os.kill(victim.target, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _read_stderr(selector: selectors.BaseSelector, lines: dict[int, bytes]) -> list[int]:
    """Read what the victims wrote on stderr; the numbers of those that wrote something."""
    wrote = []
    for key, _ in selector.select(timeout=0.02):
        chunk = os.read(key.fd, 65536)
        if chunk:
            lines[key.data] = lines.get(key.data, b"") + chunk
            wrote.append(int(key.data))
        else:
            selector.unregister(key.fileobj)
    return wrote


def test_sigkill_at_any_moment_leaves_nothing_running(
    tmp_path: Path, tracking_store_kind: str
) -> None:
    random.seed(int(os.environ.get("MLPROJ_CRASH_SEED", "20261202")))
    sources = Sources(tmp_path)
    (tmp_path / "holds").mkdir()
    tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
    wanted = KILLS[tracking_store_kind]
    plan = [(kind, phase) for kind in KINDS for phase in PHASES[kind]]
    victims: dict[int, Victim] = {}
    active: list[Victim] = []
    stderr_lines: dict[int, bytes] = {}
    selector = selectors.DefaultSelector()
    kills: collections.Counter[tuple[str, str]] = collections.Counter()
    started = time.monotonic()
    number = 0
    try:
        while sum(kills.values()) < wanted or active:
            while len(active) < AT_ONCE and sum(kills.values()) + len(active) < wanted:
                kind, phase = plan[number % len(plan)]
                victim = Victim(number, kind, phase, sources, tmp_path)
                victims[number] = active_victim = victim
                active.append(active_victim)
                assert victim.process.stderr is not None
                selector.register(victim.process.stderr, selectors.EVENT_READ, number)
                number += 1
            for fresh in _read_stderr(selector, stderr_lines):
                victim = victims[fresh]
                if victim.phase == "starting" and victim.kind != "supervisor" and not victim.done():
                    # The run is open and its command about to start: kill without a look at
                    # /proc first, which takes longer than that moment lasts.
                    if b": running " in stderr_lines[fresh] and _kill(victim):
                        victim.target, victim.killed_in = victim.process.pid, "starting"
                        kills[(victim.kind, "starting")] += 1
            _observe(victims, stderr_lines)
            now = time.monotonic()
            for victim in list(active):
                _arm(victim, now)
                if victim.kill_at is None and now - victim.spawned > 60:
                    victim.kill_at = now  # never reached its phase: killed where it is
                if victim.kill_at is not None and now >= victim.kill_at and not victim.done():
                    if _kill(victim):
                        victim.killed_in = victim.seen
                        kills[(victim.kind, victim.seen)] += 1
                    elif victim.target != victim.process.pid:
                        victim.killed_in = "missed"  # the supervisor had ended already
                if victim.done():
                    active.remove(victim)
                    if victim.process.poll() is None and victim.kind != "supervisor":
                        victim.process.wait(timeout=30)
            assert time.monotonic() - started < 900, "the crash test is stuck"
        for victim in victims.values():
            victim.process.wait(timeout=60)  # --no-wait clients end on their own
        killing = time.monotonic() - started
        print(f"\ncrash: kills took {killing:.1f} s")

        # The next command that looks at runs, as a user types it, settles what is left.
        listed = subprocess.run(
            [sys.executable, "-m", "mlproj", "runs", "list"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        store = get_store(tracking_uri)
        runs = store.search_runs([store.resolve_experiment()], max_results=10 * wanted)
        not_ended = [
            (r.run_id, r.info.status) for r in runs if r.info.status not in TERMINAL_STATUSES
        ]
        assert not not_ended, f"{len(not_ended)} of {len(runs)} runs not ended: {not_ended[:5]}"
        # `runs list` said what it settled, and each failed run says why.
        assert "was left RUNNING by an mlproj process that is gone" in listed.stderr
        unexplained = [
            r.run_id for r in runs if r.info.status == "FAILED" and not r.tags.get(TAG_ERROR)
        ]
        assert not unexplained, f"failed runs without a reason: {unexplained[:5]}"
        left = [pid for pid, (_, argv) in _processes().items() if MARKER.encode() in argv]
        deadline = time.monotonic() + 5  # a SIGKILLed group is gone within moments
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [pid for pid, (_, argv) in _processes().items() if MARKER.encode() in argv]
        assert left == [], f"{len(left)} commands of crashed runs are still running"
    finally:
        for victim in victims.values():
            victim.hold.touch()  # whatever a failure left behind ends on its own
            if victim.process.poll() is None:
                victim.process.kill()
                victim.process.wait()
            if victim.process.stderr is not None:
                victim.process.stderr.close()
        selector.close()

    real = sum(kills.values())
    assert real >= wanted, kills
    for kind in KINDS:
        for phase in PHASES[kind]:
            assert kills[(kind, phase)] > 0, f"no {kind} was killed in phase {phase}: {kills}"
    statuses = collections.Counter(str(r.info.status) for r in runs)
    print(
        f"\ncrash[{tracking_store_kind}]: {real} SIGKILLs of live victims in {killing:.0f} s, "
        f"{len(runs)} runs opened, {dict(statuses)}; by kind and phase: "
        + ", ".join(f"{k}/{p} {n}" for (k, p), n in sorted(kills.items()))
    )
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
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    assert read.returncode == 0, read.stderr[-2000:]
    *seen, count = json.loads(read.stdout.strip().splitlines()[-1])
    assert count == len(runs)
    assert set(seen) <= set(TERMINAL_STATUSES)
