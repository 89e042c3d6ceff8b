"""One reporting channel: every line mlproj prints for the user goes through here.

``--quiet``, the ``mlproj:`` prefix, the spelling of warnings and whether long work shows an
updating progress line are decided in this one place, not by each caller.

- :meth:`Reporter.info` — a status line; hidden by ``--quiet``.
- :meth:`Reporter.warning` — ``mlproj: warning: ...``; shown even with ``--quiet``.
- :meth:`Reporter.error` — ``mlproj: error: ...``; always shown.
- :meth:`Reporter.progress` — long work (an environment build, a Git fetch, an image build, a
  download): one line that updates in place on a terminal, plain lines elsewhere (CI, pipes),
  nothing with ``--quiet``.

The pipeline hands ``log`` callbacks (``Callable[[str], None]``) down to sources, environments
and backends; :meth:`Reporter.log` is that callback, and it turns a line that starts with
``Warning:`` into a warning, so older callers are spelled the same way.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

PREFIX = "mlproj: "
_WARNING_LEADS = ("warning: ", "warning:")
_FRAMES = "|/-\\"
#: How often the progress line is redrawn.
REFRESH_S = 0.1


class Reporter:
    """Prints mlproj's own lines to ``stream`` (stderr by default, looked up at each write)."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream
        self._lock = threading.RLock()
        self._active: Progress | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    # -- lines -------------------------------------------------------------------------------
    def info(self, text: str) -> None:
        if not self.quiet:
            self._line(PREFIX + text)

    def warning(self, text: str) -> None:
        self._line(f"{PREFIX}warning: {text}")

    def error(self, text: str) -> None:
        self._line(f"{PREFIX}error: {text}")

    def log(self, text: str) -> None:
        """The ``log`` callback of the pipeline: a status line, or a warning when it says so."""
        lowered = text.lower()
        for lead in _WARNING_LEADS:
            if lowered.startswith(lead):
                self.warning(text[len(lead) :].lstrip())
                return
        self.info(text)

    __call__ = log

    # -- progress ----------------------------------------------------------------------------
    def updates_in_place(self) -> bool:
        """True when a progress line may be redrawn: a real terminal, not quiet, not dumb."""
        if self.quiet or os.environ.get("TERM") == "dumb":
            return False
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):  # closed or replaced streams
            return False

    def progress(self, title: str, *, announce: bool = True) -> Progress:
        """A context manager for long work; ``step(text)`` says what it is doing now.

        ``announce``: print the title as a plain line when not on a terminal (off when the
        caller has already said what starts)."""
        return Progress(self, title, announce=announce)

    # -- output ------------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        with self._lock:
            stream = self.stream
            if self._active is not None and self._active.drawn:
                stream.write("\r\x1b[2K")  # the next redraw puts the progress line back
            stream.write(line + "\n")
            stream.flush()

    def _draw(self, text: str) -> None:
        with self._lock:
            import shutil  # here: it imports bz2 and lzma; only a live progress line needs it

            width = shutil.get_terminal_size((80, 24)).columns
            # Longer than the terminal would wrap, and "\r" would then redraw only the tail.
            self.stream.write("\r\x1b[2K" + text[: max(width - 1, 10)])
            self.stream.flush()

    def _clear(self) -> None:
        with self._lock:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


class Progress:
    """Long work under way; see :meth:`Reporter.progress`."""

    def __init__(self, reporter: Reporter, title: str, *, announce: bool = True) -> None:
        self.reporter = reporter
        self.title = title
        self.current = ""
        self.announce = announce
        self.started = time.monotonic()
        self.drawn = False
        self._live = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def live(self) -> bool:
        """True while the work is shown as an updating line (a terminal, not quiet)."""
        return self._live

    def step(self, text: str) -> None:
        """What the work is doing now: redrawn in place on a terminal, else one plain line."""
        self.current = text
        if not self._live:
            self.reporter.info(f"{self.title}: {text}")

    def update(self, text: str) -> None:
        """A detail that changes often (bytes so far): shown on a terminal only."""
        self.current = text

    def transferred(self, done: int, total: int | None = None) -> None:
        """Bytes downloaded so far (of ``total`` when known), as an :meth:`update`."""
        self.update(f"{_size(done)} of {_size(total)}" if total else _size(done))

    def line(self) -> str:
        frame = _FRAMES[int(self.elapsed / REFRESH_S) % len(_FRAMES)]
        doing = f": {self.current}" if self.current else ""
        return f"{frame} {self.title}{doing} ({self.elapsed:.1f}s)"

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        reporter = self.reporter
        with reporter._lock:
            # Nested progress (a download inside an environment build): the outer line stays.
            self._live = reporter.updates_in_place() and reporter._active is None
            if self._live:
                reporter._active = self
        if self._live:
            self._thread = threading.Thread(target=self._spin, name="mlproj-progress", daemon=True)
            self._thread.start()
        elif self.announce:
            reporter.info(self.title)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._live:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.reporter._lock:
            if self.drawn:
                self.reporter._clear()
            self.reporter._active = None

    def _spin(self) -> None:
        while True:
            with self.reporter._lock:
                if self._stop.is_set():
                    return
                self.reporter._draw(self.line())
                self.drawn = True
            if self._stop.wait(REFRESH_S):
                return


# -- the process's reporter ----------------------------------------------------------------------
_current = Reporter()


def current() -> Reporter:
    """The reporter in use: the CLI's (``--quiet`` decided), else a default one on stderr."""
    return _current


@contextmanager
def using(reporter: Reporter) -> Iterator[Reporter]:
    """Make ``reporter`` the process's reporter for the block."""
    global _current  # noqa: PLW0603 - the one process-wide channel, as a logger is
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous


def info(text: str) -> None:
    _current.info(text)


def warning(text: str) -> None:
    _current.warning(text)


def log(text: str) -> None:
    _current.log(text)


def progress(title: str, *, announce: bool = True) -> Progress:
    return _current.progress(title, announce=announce)


def _size(num: float) -> str:
    for unit in ("B", "KB", "MB"):
        if num < 1024:
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return f"{num:.1f} GB"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant (``alpa`` -> ``alpha``), if any is close."""
    import difflib  # here: only a typo needs it, and it costs every start

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal, aligned plain text otherwise (pipes, files, CI logs)."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(*headers, box=None, header_style="bold", pad_edge=False)
            for row in rows:
                table.add_row(*row)
            Console().print(table)
            return
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
