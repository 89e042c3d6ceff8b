"""One reporting channel: --quiet, the spelling of warnings and the progress line decided once."""

from __future__ import annotations

import io
import time

import pytest

from mlproj import report
from mlproj.shell import show_command


class Terminal(io.StringIO):
    """Collects what would be drawn on a terminal: isatty is the only thing faked here; the
    real terminal is tested under tmux in test_cli_progress.py."""

    def isatty(self) -> bool:
        return True


def test_quiet_hides_status_lines_but_not_warnings_or_errors() -> None:
    out = io.StringIO()
    quiet = report.Reporter(quiet=True, stream=out)
    quiet.info("Creating environment x")
    quiet.warning("something odd")
    quiet.error("it failed")
    assert out.getvalue().splitlines() == [
        "mlproj: warning: something odd",
        "mlproj: error: it failed",
    ]


@pytest.mark.parametrize(
    "text", ["Warning: the pod gets ...", "warning: the pod gets ...", "WARNING:the pod gets ..."]
)
def test_every_spelling_of_a_warning_comes_out_one_way(text: str) -> None:
    out = io.StringIO()
    report.Reporter(quiet=True, stream=out).log(text)
    assert out.getvalue() == "mlproj: warning: the pod gets ...\n"


def test_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    reporter = report.Reporter(stream=out)
    with reporter.progress("Building env") as progress:
        progress.step("installing")
        progress.transferred(10, 100)  # detail for a terminal only
    assert out.getvalue() == "mlproj: Building env\nmlproj: Building env: installing\n"
    assert "\r" not in out.getvalue()


def test_nothing_with_quiet_even_on_a_terminal() -> None:
    screen = Terminal()
    with report.Reporter(quiet=True, stream=screen).progress("Building env") as progress:
        progress.step("installing")
        time.sleep(0.3)
    assert screen.getvalue() == ""


def test_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    screen = Terminal()
    with report.Reporter(stream=screen).progress("Fetching repo"):
        time.sleep(0.2)
    assert screen.getvalue() == "mlproj: Fetching repo\n"


def test_one_updating_line_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    reporter = report.Reporter(stream=screen)
    with reporter.progress("Downloading data.csv") as progress:
        progress.transferred(2048, 4096)
        time.sleep(0.35)
        reporter.info("a status line in between")
        time.sleep(0.25)
    drawn = screen.getvalue()
    assert "\n" not in drawn.replace("mlproj: a status line in between\n", "")  # one line only
    assert "Downloading data.csv: 2.0 KB of 4.0 KB (0." in drawn
    # The status line is printed on a cleared line, and the progress line is drawn again after it.
    before, after = drawn.split("mlproj: a status line in between\n")
    assert before.endswith("\r\x1b[2K") and "Downloading data.csv" in after
    assert drawn.endswith("\r\x1b[2K")  # cleared at the end: nothing left behind


def test_progress_line_never_wraps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "40")
    screen = Terminal()
    with report.Reporter(stream=screen).progress("Fetching " + "x" * 100):
        time.sleep(0.25)
    drawn = [part for part in screen.getvalue().split("\r\x1b[2K") if part]
    assert drawn and all(len(part) < 40 for part in drawn)


def test_library_default_reporter_is_replaced_for_a_block() -> None:
    out = io.StringIO()
    with report.using(report.Reporter(quiet=True, stream=out)):
        report.log("Creating environment x")
        report.log("Warning: dropped a dependency")
    assert out.getvalue() == "mlproj: warning: dropped a dependency\n"
    assert report.current().quiet is False


def test_closest_name() -> None:
    assert report.closest("alpa", ["alpha", "epochs", "greeting"]) == "alpha"
    assert report.closest("zzz", ["alpha", "epochs"]) is None


def test_commands_are_shown_as_a_shell_takes_them() -> None:
    command = "python -c 'import sys; print(\"x\"); sys.exit(3)'"
    assert show_command(command) == command  # shell text as written, never Python-quoted
    assert show_command("python a.py \\\n  --alpha 1\n") == "python a.py \\\n  --alpha 1"
    assert show_command(["python", "-c", "print('a b')"]) == "python -c 'print('\"'\"'a b'\"'\"')'"
    assert show_command(["echo", "a b", "$HOME"]) == "echo 'a b' '$HOME'"
