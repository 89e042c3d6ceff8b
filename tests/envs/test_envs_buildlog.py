"""Build feedback: a progress line on a terminal, step lines otherwise, the log tail on failure."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from mlproj.envs.buildlog import BuildFailed, BuildLog


class FakeTerminal(io.StringIO):
    """Collects what would be drawn on a terminal (isatty is the only thing faked)."""

    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal(tmp_path: Path) -> None:
    screen = FakeTerminal()
    lines: list[str] = []
    with BuildLog(tmp_path / "build.log", "Building env", lines.append, stream=screen) as blog:
        blog.run("installing dependencies", ["sleep", "0.5"], dict(os.environ), tmp_path)
    drawn = screen.getvalue()
    assert "Building env: installing dependencies (0." in drawn
    assert drawn.endswith("\r\x1b[2K")  # the line is cleared at the end
    assert lines == []  # no step lines under the progress line


def test_step_lines_without_a_terminal(tmp_path: Path) -> None:
    lines: list[str] = []
    with BuildLog(tmp_path / "build.log", "Building env", lines.append, stream=io.StringIO()) as b:
        b.run("creating", ["true"], dict(os.environ), tmp_path)
    assert lines == ["Building env: creating"]
    assert "$ cd " in (tmp_path / "build.log").read_text()


def test_failure_message_has_the_last_20_lines_and_the_log_path(tmp_path: Path) -> None:
    script = "for i in $(seq 1 50); do echo line$i; done; echo 'ERROR: boom' >&2; exit 3"
    blog = BuildLog(tmp_path / "build.log", "Building env", lambda _l: None, stream=io.StringIO())
    with pytest.raises(BuildFailed) as info:
        blog.run("installing", ["bash", "-c", script], dict(os.environ), tmp_path)
    message = str(info.value)
    assert message.startswith("Building env failed while installing (exit code 3).")
    tail = message.split("Last lines of the build log:\n")[1].split(
        "\nFull build log:", maxsplit=1
    )[0]
    assert len(tail.splitlines()) == 20
    assert "ERROR: boom" in tail and "line50" in tail and "line20" not in tail
    assert message.endswith(f"Full build log: {tmp_path / 'build.log'}")
    assert "line1\n" in (tmp_path / "build.log").read_text()  # the full log is kept
