"""Running one launch plan: its own process group, output streamed and kept, clean stops.

Used in-process for synchronous runs and by the detached supervisor for asynchronous ones.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mlproj.envs.base import LaunchPlan
from mlproj.errors import ExecutionException
from mlproj.local_run.identity import boottime_ns, spawned_start_ticks
from mlproj.settings import kill_grace, output_linger
from mlproj.tracking.common import now_ms


class ProcessRunner:
    """Start a :class:`LaunchPlan`, copy its output to the console and a log file, stop it.

    The child leads its own session, so stopping it reaches every grandchild too.

    With ``caller_reads``, no threads: stdout and stderr share one pipe (:attr:`output_fd`)
    that the caller's event loop reads with :meth:`read_output` until it returns False; the
    output goes to the log only. Orchestration runs many children so, in one thread.
    """

    def __init__(
        self, plan: LaunchPlan, log_path: Path, *, echo: bool = True, caller_reads: bool = False
    ) -> None:
        self.plan = plan
        self.log_path = log_path
        self.echo = echo and not caller_reads
        self.caller_reads = caller_reads
        self.output_fd: int | None = None  # caller_reads: the pipe, until its end was read
        self._owner = threading.get_ident()  # caller_reads: the thread that reads the pipe
        self.stopped_by: str | None = None  # "cancel" or "timeout" once we stopped it
        self.log_error: str | None = None  # why the log file stopped being written
        # True when, after the command exited, processes it left running still held its
        # output open and the run ended without them (see abandon_output).
        self.output_left_open = False
        self.exited_ms: int | None = None  # when the command was seen to have exited
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawned_between = (0, 0)  # CLOCK_BOOTTIME around the spawn
        self._pumps: list[threading.Thread] = []
        self._log: BinaryIO | None = None
        self._log_lock = threading.Lock()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start_ticks(self) -> str | None:
        """The command's start time, as its identity tag records it."""
        return spawned_start_ticks(self.pid, *self._spawned_between)

    @property
    def read_elsewhere(self) -> bool:
        """True in a thread other than the one whose loop reads the output (caller_reads)."""
        return self.caller_reads and threading.get_ident() != self._owner

    def start(self) -> None:
        self._owner = threading.get_ident()
        # os.makedirs: Path.mkdir(parents=True) costs a sweep's every trial twice as much.
        os.makedirs(self.log_path.parent, exist_ok=True)  # noqa: PTH103
        self._log = self.log_path.open("ab", buffering=0)
        before = boottime_ns()
        try:
            self._proc = subprocess.Popen(
                self.plan.argv,
                executable=_executable(self.plan.argv[0], self.plan.env.get("PATH")),
                cwd=self.plan.cwd,
                env=self.plan.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if self.caller_reads else subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            self._log.close()
            hint = (
                f"; check that {self.plan.argv[0]!r} is installed and on PATH"
                if isinstance(exc, FileNotFoundError)
                else ""
            )
            raise ExecutionException(
                f"Could not start {self.plan.argv[0]!r} in {self.plan.cwd}: {exc.strerror}{hint}"
            ) from None
        self._spawned_between = (before, boottime_ns())
        if self.caller_reads:
            assert self._proc.stdout is not None
            self.output_fd = self._proc.stdout.fileno()
            return
        assert self._proc.stdout is not None and self._proc.stderr is not None
        try:
            for source, console in (
                (self._proc.stdout, "stdout"),
                (self._proc.stderr, "stderr"),
            ):
                pump = threading.Thread(target=self._pump, args=(source, console), daemon=True)
                pump.start()
                self._pumps.append(pump)
        except BaseException:
            # Ctrl-C right after the start: the command runs already and must not outlive us.
            self.stop("cancel")
            raise

    def _pump(self, source: BinaryIO, console: str) -> None:
        # Chunks, not lines: progress bars and prompts without newlines still show up live.
        stream = sys.stdout if console == "stdout" else sys.stderr
        echo = _console_writer(stream) if self.echo else None
        fd = source.fileno()
        while chunk := os.read(fd, 65536):
            self._keep(chunk)
            if echo is not None:
                echo(chunk)
        source.close()

    def read_output(self) -> bool:
        """caller_reads: read what the pipe holds into the log; False once it has ended."""
        assert self._proc is not None and self._proc.stdout is not None
        if self.output_fd is None:
            return False
        chunk = os.read(self.output_fd, 65536)
        if chunk:
            self._keep(chunk)
            return True
        self.output_fd = None
        self._proc.stdout.close()
        return False

    def _keep(self, chunk: bytes) -> None:
        """Append to the log file. If that fails (disk full), the output is still drained and
        shown: a pipe nobody reads would block the command forever."""
        with self._log_lock:
            if self._log is None or self.log_error is not None:
                return
            try:
                self._log.write(chunk)
            except OSError as exc:
                self.log_error = f"{exc.strerror or exc} ({self.log_path})"
                print(
                    f"mlproj: warning: the run's output log is incomplete from here on: "
                    f"{self.log_error}",
                    file=sys.stderr,
                    flush=True,
                )

    def poll(self) -> int | None:
        assert self._proc is not None
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child and its output; on timeout stop it and return its exit code."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(reason="timeout")
            code = self._proc.wait()
        self.note_exit()
        self._finish()
        return code

    def note_exit(self) -> None:
        """The command has exited: its run ends now, whatever it left running."""
        if self.exited_ms is None:
            self.exited_ms = now_ms()

    def _finish(self) -> None:
        if self.read_elsewhere:
            return  # the reading loop drains the pipe and closes the log
        # The command has exited: what is left in the pipe, or written by a process it left
        # running until that closes its end, goes to the log, for output_linger() seconds.
        waits = self._pumps or (self.caller_reads and self.output_fd is not None)
        deadline = time.monotonic() + output_linger() if waits else 0.0
        if self.caller_reads and self.output_fd is not None:
            while self.output_fd is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.output_fd], [], [], remaining)[0]:
                    self.abandon_output()
                    break
                self.read_output()
        for pump in self._pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
            if pump.is_alive():  # a daemon pump: it ends with the pipe, or with this process
                self._note_left_open()
        self._pumps.clear()
        with self._log_lock:  # a pump still reading may be about to write
            if self._log is not None:
                self._log.close()
                self._log = None

    def abandon_output(self) -> None:
        """caller_reads: stop reading the output of a command that has exited, though
        processes it left running still hold it open; they get EPIPE if they write more."""
        if self.output_fd is None:
            return
        self._note_left_open()
        self.output_fd = None
        assert self._proc is not None and self._proc.stdout is not None
        self._proc.stdout.close()

    def _note_left_open(self) -> None:
        if self.output_left_open:
            return
        self.output_left_open = True
        note = (
            "mlproj: warning: the command has exited, but processes it started still hold its "
            "output; they are left running, and what they print from now on is not kept\n"
        )
        self._keep(note.encode())
        if self.echo:
            _console_writer(sys.stderr)(note.encode())

    def run_cancel_commands(self) -> None:
        """The plan's clean-up after a cancel (e.g. removing a container), best effort."""
        for argv in self.plan.on_cancel:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=60,
                    check=False,
                )

    def stop(self, reason: str = "cancel") -> None:
        """SIGTERM the whole process group, SIGKILL it after the grace period, then run the
        plan's cancel commands (e.g. removing a container)."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self.stopped_by = self.stopped_by or reason
        # else the command had ended on its own (what it left running is stopped all the
        # same): its run is recorded with its own exit status, not as stopped.
        try:
            grace = kill_grace()
        except ExecutionException as exc:
            # Stopping must not fail over a setting: stop at once, and say why.
            print(f"mlproj: warning: {exc}; stopping without a grace period", file=sys.stderr)
            grace = 0.0
        pgid = self._proc.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        interrupted: BaseException | None = None
        try:
            while self._proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - a 2nd Ctrl-C/signal: kill now, re-raised below
            interrupted = exc
        # The leader may be gone while grandchildren linger in the group: kill them all.
        _signal_group(pgid, signal.SIGKILL)
        self.run_cancel_commands()
        self._proc.wait()
        self.note_exit()
        self._finish()
        if interrupted is not None:
            raise interrupted


@functools.lru_cache(maxsize=64)
def _executable(name: str, path: str | None) -> str | None:
    """A bare command name looked up once per PATH (Popen would try every PATH entry with an
    execve on each start: 7 failed ones for bash here, per trial). None: let Popen do it."""
    if os.sep in name:
        return None
    # shutil.which's rule (its import, with bz2 and lzma, is a millisecond of every start); a
    # relative PATH entry is left to Popen, which resolves it from the command's folder.
    for folder in (os.defpath if path is None else path).split(os.pathsep):
        if not Path(folder).is_absolute():
            return None
        candidate = Path(folder, name)
        if os.access(candidate, os.X_OK) and not candidate.is_dir():
            return str(candidate)
    return None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _console_writer(stream: object) -> Callable[[bytes], None]:
    """A bytes writer for a console stream that never raises (a closed console must not
    stop the run or lose its log)."""
    binary = getattr(stream, "buffer", None)

    def write(chunk: bytes) -> None:
        with contextlib.suppress(OSError, ValueError):
            if binary is not None:
                binary.write(chunk)
                binary.flush()
            else:
                stream.write(chunk.decode(errors="replace"))  # type: ignore[attr-defined]
                stream.flush()  # type: ignore[attr-defined]

    return write
