"""A spawned command's identity (pid and start time) without waiting for its exec, on real
processes: the start known from the clock agrees with /proc, and a command that ends at
once still gets one."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlproj.envs.base import LaunchPlan
from mlproj.local_run import identity
from mlproj.local_run.identity import boottime_ns, process_start_ticks, spawned_start_ticks
from mlproj.local_run.process import ProcessRunner

NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


@pytest.fixture(autouse=True)
def _unchecked_clock() -> Iterator[None]:
    """Each test starts as a new process does: the clock not yet checked against /proc."""
    saved = identity._spawn_clock_agrees
    identity._spawn_clock_agrees = None
    yield
    identity._spawn_clock_agrees = saved


def _runner(tmp_path: Path, script: str, name: str) -> ProcessRunner:
    plan = LaunchPlan(argv=["bash", "-c", script], env=dict(os.environ), cwd=tmp_path)
    return ProcessRunner(plan, tmp_path / name / "output.log", caller_reads=True)


def _finish(runner: ProcessRunner) -> None:
    while runner.read_output():
        pass
    runner.wait()


def test_the_start_known_from_the_clock_is_the_one_proc_shows(tmp_path: Path) -> None:
    runners = []
    for i in range(20):
        runner = _runner(tmp_path, "sleep 2", f"r{i}")
        runner.start()
        runners.append((runner, runner.start_ticks()))
    time.sleep(0.2)  # every exec is over: /proc answers at once now
    try:
        for runner, recorded in runners:
            assert recorded is not None
            assert recorded == process_start_ticks(runner.pid)
        assert identity._spawn_clock_agrees is True  # checked on the first spawn, then trusted
    finally:
        for runner, _ in runners:
            runner.stop("cancel")


def test_a_command_that_ends_at_once_still_gets_its_start(tmp_path: Path) -> None:
    # Read from /proc right after the spawn, most of these were gone (no start recorded).
    first = _runner(tmp_path, "sleep 1", "first")
    first.start()
    first.start_ticks()  # this machine's clock is checked on a command that is still there
    quick = []
    for i in range(100):
        runner = _runner(tmp_path, "true", f"q{i}")
        runner.start()
        quick.append(runner.start_ticks())
        _finish(runner)
    first.stop("cancel")
    # A spawn whose clock readings straddle a tick reads /proc: a few of them may be gone.
    known = [int(ticks) for ticks in quick if ticks]
    assert len(known) >= 90, quick
    now = boottime_ns() // NS_PER_TICK
    assert all(now - 1000 <= ticks <= now for ticks in known)  # within the last 10 s


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[ProcessRunner, str]]:
    """A running command whose exec is over, and its start as /proc shows it."""
    runner = _runner(tmp_path, "sleep 5", "r")
    runner.start()
    time.sleep(0.2)
    actual = process_start_ticks(runner.pid)
    assert actual is not None
    yield runner, actual
    runner.stop("cancel")


def test_a_spawn_that_straddles_a_tick_reads_proc(sleeper: tuple[ProcessRunner, str]) -> None:
    runner, actual = sleeper
    # Readings a tick apart: the clock cannot tell, so /proc does (even if trusted).
    identity._spawn_clock_agrees = True
    late = (int(actual) + 50) * NS_PER_TICK
    assert spawned_start_ticks(runner.pid, late, late + NS_PER_TICK) == actual


def test_a_machine_whose_clock_disagrees_reads_proc_for_good(
    sleeper: tuple[ProcessRunner, str],
) -> None:
    runner, actual = sleeper
    wrong = (int(actual) + 7) * NS_PER_TICK  # one tick, but not the one /proc shows
    assert spawned_start_ticks(runner.pid, wrong, wrong) == actual
    assert identity._spawn_clock_agrees is False
    assert spawned_start_ticks(runner.pid, wrong, wrong) == actual  # /proc from now on


@pytest.mark.parametrize(
    "environ",
    [{"LOGNAME": "from-logname", "USER": "u"}, {"USER": "from-user"}, {"USERNAME": "win"}, {}],
)
def test_a_runs_user_is_who_getpass_names(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    """mlflow.user: getpass.getuser's answer (variables in its order, then the passwd entry),
    without importing getpass on every start."""
    import getpass

    from mlproj.api import _user

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _user.__wrapped__() == getpass.getuser()
