"""What every mlproj command does around its own work, without importing click.

``mlproj run`` may be parsed without click (:mod:`mlproj.cli.run_options`), so the parts every
command shares live here: replaying journals kept while a store was down, the one-line
failure, and turning any exception into one line with a conventional exit code.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

T = TypeVar("T")


def journals_waiting() -> bool:
    """Cheap check for every command's start: does the journal folder hold anything?"""
    from mlproj.home import mlproj_home
    from mlproj.tracking.journal import JOURNAL_DIR

    try:
        return any(p.suffix == ".jsonl" for p in (mlproj_home() / JOURNAL_DIR).iterdir())
    except OSError:
        return False


def replay_journals_quietly() -> None:
    """Replay pending journals; say what was sent, keep quiet about what still cannot be."""
    if not journals_waiting():
        return
    from mlproj.tracking.journal import replay

    synced, _still_pending = replay(quick=True)
    # This runs before the command parses --quiet, so look for it here.
    if any(arg in ("-q", "--quiet") for arg in sys.argv[1:]):
        return
    from mlproj import report

    for run_id in synced:
        report.info(f"sent the updates of run {run_id} kept while its store was unreachable")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, no traceback, then exit (a multi-line build log tail is kept)."""
    from mlproj import report

    report.current().error(message)
    sys.exit(code)


@contextmanager
def one_line_when_stopped(what: str) -> Iterator[None]:
    """Our error, Ctrl-C (exit 130) or a cancelling signal (128 + its number) while a run,
    sweep or pipeline (``what``) goes: one line saying so, and the conventional exit code."""
    from mlproj.errors import ExecutionException
    from mlproj.local_run.supervisor import Cancelled

    try:
        yield
    except ExecutionException as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted; the {what} was cancelled", code=130)
    except Cancelled as stop:
        fail(
            f"stopped by {signal.Signals(stop.signum).name}; the {what} was cancelled",
            code=128 + stop.signum,
        )


def guarded(call: Callable[[], T], passthrough: tuple[type[BaseException], ...] = ()) -> T:
    """Run a command: Ctrl-C exits 130 with one line (not click's "Aborted!" and 1), our
    errors are one line, and so is a bug of ours or an untranslated library error, without
    credentials (``MLPROJ_DEBUG=1`` shows its traceback). ``passthrough`` exceptions (click's
    own usage errors and exits) are left to the caller."""
    from mlproj.errors import ExecutionException

    try:
        return call()
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except passthrough:
        raise
    except ExecutionException as exc:
        fail(str(exc))
    except Exception as exc:
        if _debugging():
            raise
        from mlproj.errors import one_line
        from mlproj.redaction import scrub_text

        detail = one_line(scrub_text(str(exc))) or "no details"
        fail(
            f"unexpected {type(exc).__name__}: {detail} "
            "(MLPROJ_DEBUG=1 shows the traceback; please report it)"
        )


def _debugging() -> bool:
    from mlproj.errors import ExecutionException
    from mlproj.settings import DEBUG

    try:
        return DEBUG.get()
    except ExecutionException:
        return True  # a value that is not 0/1: the user wants to see something
