"""Run the commands that build an environment: full output to a log file, a progress line on a
terminal, and the tail of the log in the error when a step fails."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from mlproj import report
from mlproj.errors import ExecutionException

TAIL_LINES = 20


class BuildFailed(ExecutionException):
    """A build step failed; the message already holds the log tail and the log's path."""


class BuildLog:
    """One build's log file plus the progress feedback shown to the user while it runs."""

    def __init__(
        self,
        path: Path,
        title: str,
        log: Callable[[str], None],
        stream: TextIO | None = None,
    ) -> None:
        self.path = path
        self.title = title
        self.log = log
        self.stream = stream  # None: the process's reporter (stderr), which knows --quiet
        self.step = "starting"
        self.started = time.monotonic()
        self._progress: report.Progress | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {title}\n", encoding="utf-8")

    # -- progress line (mlproj.report: one updating line on a terminal, else step lines) -----
    def __enter__(self) -> BuildLog:
        reporter = report.current()
        if self.stream is not None:
            reporter = report.Reporter(quiet=reporter.quiet, stream=self.stream)
        self._progress = reporter.progress(self.title, announce=False).__enter__()
        self._progress.current = self.step
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
            self._progress = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- steps ---------------------------------------------------------------------------------
    def note(self, line: str) -> None:
        """A line for the log file only."""
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line.rstrip("\n") + "\n")

    def run(
        self,
        step: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        *,
        check: bool = True,
    ) -> int:
        """Run one build command; its output goes to the log. Raise BuildFailed on failure
        when ``check``, else return the exit code."""
        self.step = step
        if self._progress is not None and self._progress.live:
            self._progress.step(step)
        else:
            self.log(f"{self.title}: {step}")
        self.note(f"\n## {step}\n$ cd {shlex.quote(str(cwd))} && {shlex.join(argv)}")
        try:
            with self.path.open("a", encoding="utf-8") as out:
                code = subprocess.run(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                ).returncode
        except OSError as exc:
            self.note(f"cannot start {argv[0]}: {exc}")
            if not check:
                return 127
            raise self.failure(step, f"cannot start {argv[0]}: {exc.strerror}") from None
        self.note(f"# exit code {code}")
        if code != 0 and check:
            raise self.failure(step, f"exit code {code}")
        return code

    def failure(self, step: str, reason: str) -> BuildFailed:
        return BuildFailed(
            f"{self.title} failed while {step} ({reason}).\n"
            f"Last lines of the build log:\n{self.tail()}\n"
            f"Full build log: {self.path}"
        )

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "  (build log unreadable)"
        all_lines = text.rstrip("\n").splitlines()
        # The header (title, key inputs) is for the log reader, not for the error message.
        first_step = next((i for i, line in enumerate(all_lines) if line.startswith("## ")), 0)
        return "\n".join("  " + line for line in all_lines[first_step:][-lines:])
