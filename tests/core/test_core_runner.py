"""ProcessRunner with real processes: streaming, logs, process-tree stops, timeouts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlproj.envs.base import LaunchPlan
from mlproj.local_run.process import ProcessRunner


def _plan(tmp_path: Path, script: str) -> LaunchPlan:
    return LaunchPlan(argv=["bash", "-c", script], env=dict(os.environ), cwd=tmp_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_output_is_streamed_to_console_and_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "out" / "output.log"
    runner = ProcessRunner(_plan(tmp_path, "echo to-out; echo to-err >&2; printf no-newline"), log)
    runner.start()
    assert runner.wait() == 0
    captured = capfd.readouterr()
    assert "to-out" in captured.out and "no-newline" in captured.out
    assert "to-err" in captured.err
    text = log.read_text()
    assert "to-out" in text and "to-err" in text and "no-newline" in text


def test_exit_code_is_returned(tmp_path: Path) -> None:
    runner = ProcessRunner(_plan(tmp_path, "exit 7"), tmp_path / "log", echo=False)
    runner.start()
    assert runner.wait() == 7
    assert runner.stopped_by is None


def test_stop_kills_grandchildren_that_ignore_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_KILL_GRACE", "0.5")
    pids = tmp_path / "pids"
    script = f"(trap '' TERM; sleep 300) & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait"
    runner = ProcessRunner(_plan(tmp_path, script), tmp_path / "log", echo=False)
    runner.start()
    deadline = time.monotonic() + 10
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    children = [int(p) for p in pids.read_text().split()]
    assert all(_alive(p) for p in children)
    runner.stop()
    runner.wait()
    assert runner.stopped_by == "cancel"
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_alive(p) for p in children)


def test_timeout_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJ_KILL_GRACE", "0.5")
    runner = ProcessRunner(_plan(tmp_path, "sleep 300"), tmp_path / "log", echo=False)
    runner.start()
    started = time.monotonic()
    code = runner.wait(timeout=0.3)
    assert time.monotonic() - started < 5
    assert code != 0
    assert runner.stopped_by == "timeout"


def test_cancel_commands_run_after_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJ_KILL_GRACE", "0.5")
    marker = tmp_path / "cancelled"
    plan = _plan(tmp_path, "sleep 300")
    plan.on_cancel = [["touch", str(marker)]]
    runner = ProcessRunner(plan, tmp_path / "log", echo=False)
    runner.start()
    runner.stop()
    assert marker.exists()


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    from mlproj.errors import ExecutionException

    plan = LaunchPlan(argv=["definitely-not-a-command-xyz"], env=dict(os.environ), cwd=tmp_path)
    runner = ProcessRunner(plan, tmp_path / "log", echo=False)
    with pytest.raises(ExecutionException, match="definitely-not-a-command-xyz"):
        runner.start()


# A command that leaves a process running which holds its output (a daemon it started),
# and one that prints shortly after the command exits.
LEAVES_A_DAEMON = "(sleep 30 &) ; (sleep 0.3; echo late) & echo early"


@pytest.mark.parametrize("caller_reads", [False, True])
def test_a_run_ends_with_its_command_not_with_what_it_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller_reads: bool
) -> None:
    monkeypatch.setenv("MLPROJ_OUTPUT_LINGER", "1")
    log = tmp_path / "out" / "output.log"
    runner = ProcessRunner(_plan(tmp_path, LEAVES_A_DAEMON), log, caller_reads=caller_reads)
    runner.start()
    started = time.monotonic()
    try:
        assert runner.wait() == 0
        waited = time.monotonic() - started
        assert 0.9 < waited < 5  # the linger, not the daemon's 30 s
        assert runner.exited_ms is not None
        assert time.time() * 1000 - runner.exited_ms > 800  # its end: before the linger
        assert runner.output_left_open
        text = log.read_text()
        assert "early" in text and "late" in text  # printed within the linger: kept
        assert "still hold its output" in text
    finally:
        os.killpg(runner.pid, 9)  # the daemon it left, still running in its process group


def test_a_command_whose_output_closes_with_it_waits_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_OUTPUT_LINGER", "10")
    log = tmp_path / "out" / "output.log"
    runner = ProcessRunner(_plan(tmp_path, "sleep 0.2 & echo done; wait"), log)
    runner.start()
    started = time.monotonic()
    assert runner.wait() == 0
    assert time.monotonic() - started < 3
    assert not runner.output_left_open
    assert "still hold" not in log.read_text()


def test_a_stop_after_the_command_ended_stops_what_it_left_but_not_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C while mlproj waits for a daemon's output: the command finished, the daemon goes.
    monkeypatch.setenv("MLPROJ_OUTPUT_LINGER", "30")
    monkeypatch.setenv("MLPROJ_KILL_GRACE", "1")
    log = tmp_path / "out" / "output.log"
    runner = ProcessRunner(_plan(tmp_path, "(sleep 30 & echo $! > daemon) ; echo done"), log)
    runner.start()
    deadline = time.monotonic() + 10
    while runner.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    daemon = int((tmp_path / "daemon").read_text())
    runner.stop("cancel")
    assert runner.stopped_by is None  # its run: FINISHED, from its exit code
    assert runner.wait() == 0
    assert not _alive(daemon)

    running = ProcessRunner(_plan(tmp_path, "sleep 30"), tmp_path / "r" / "output.log")
    running.start()
    running.stop("cancel")
    assert running.stopped_by == "cancel"


def test_the_command_is_found_on_path_as_shutil_which_finds_it(tmp_path: Path) -> None:
    """The executable is looked up once per PATH by the rule of shutil.which; a folder of
    that name is skipped, a relative PATH entry is left to Popen (it means the command's
    folder there, not ours)."""
    import shutil

    from mlproj.local_run import process

    first, second = tmp_path / "first", tmp_path / "second"
    (first / "tool").mkdir(parents=True)  # a folder, not the tool
    second.mkdir()
    tool = second / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (second / "plain").write_text("not executable")
    path = f"{first}:{second}"
    assert process._executable("tool", path) == str(tool) == shutil.which("tool", path=path)
    assert process._executable("plain", path) is None
    assert process._executable("missing", path) is None
    assert process._executable("tool", f"bin:{second}") is None  # Popen decides
    assert process._executable("./tool", path) is None  # a path: not looked up
