"""Settings read when used (a bad value is one clear error before any run opens; a later
change takes effect) and commands shown as written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlproj.envs.base import LaunchPlan
from mlproj.local_run.process import ProcessRunner
from mlproj.tracking.base import TrackingStore
from tests.e2e.e2e_support import MakeProject, run_cli

MULTI_LINE = """
name: multi
entry_points:
  main:
    command: |
      echo first \\
        second
      echo "third 'quoted'"
"""


SLOW_TO_STOP = "trap '' TERM; echo up; sleep 300"


def _runs(store: TrackingStore) -> list[object]:
    return list(store.search_runs([e.experiment_id for e in store.list_experiments()]))


def test_multi_line_command_is_shown_as_written(make_project: MakeProject) -> None:
    project = make_project(MULTI_LINE)
    done = run_cli("run", str(project))
    assert done.returncode == 0, done.stderr
    assert "first second\nthird 'quoted'\n" in done.stdout
    lines = done.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(": running:"))
    assert lines[start + 1 : start + 4] == [
        "    echo first \\",
        "      second",
        "    echo \"third 'quoted'\"",
    ]
    assert "\\\\\n" not in done.stderr and "\\n" not in done.stderr


def test_single_line_command_is_shown_plainly(make_project: MakeProject) -> None:
    project = make_project(
        "entry_points:\n  main:\n    parameters: {w: string}\n    command: 'echo {w}'\n"
    )
    done = run_cli("run", str(project), "-P", "w=a b")
    assert done.returncode == 0, done.stderr
    assert ": running echo 'a b'" in done.stderr


@pytest.mark.parametrize("setting", ["MLPROJ_KILL_GRACE", "MLPROJ_OUTPUT_LINGER"])
@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_stop_setting_is_one_clear_error_and_opens_no_run(
    make_project: MakeProject,
    store: TrackingStore,
    setting: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(MULTI_LINE)
    monkeypatch.setenv(setting, value)
    done = run_cli("run", str(project))
    assert done.returncode == 1
    (last,) = done.stderr.strip().splitlines()
    assert last.startswith(f"mlproj: error: Environment variable {setting}={value!r}")
    assert _runs(store) == []


def _stop_seconds(workdir: Path) -> float:
    """How long stopping a command that ignores SIGTERM takes (the grace period, then SIGKILL)."""
    runner = ProcessRunner(
        LaunchPlan(argv=["bash", "-c", SLOW_TO_STOP], env=dict(os.environ), cwd=workdir),
        workdir / "out.log",
        echo=False,
    )
    runner.start()
    deadline = time.monotonic() + 10
    while "up" not in (workdir / "out.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    runner.stop()
    return time.monotonic() - started


def test_kill_grace_changed_after_import_takes_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_KILL_GRACE", "2")
    assert 2 <= _stop_seconds(tmp_path) < 10
    monkeypatch.setenv("MLPROJ_KILL_GRACE", "0")
    assert _stop_seconds(tmp_path) < 1.5
