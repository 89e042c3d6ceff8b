"""Finding a run's supervising process again: identity tags, cancel and orphan detection.

Every local run records who supervises it (the ``mlproj run`` process for synchronous runs,
the detached supervisor for asynchronous ones) as tags, so any process on the same host can
cancel it (``mlproj runs cancel``) or tell that it was orphaned by a crash (``runs reap``).
A pid alone is not an identity (pids are reused), so the process start time and the boot id
are recorded with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tags import (
    MLFLOW_PARENT_RUN_ID,
    TAG_BOOT_ID,
    TAG_CANCEL,
    TAG_CHILD_PID,
    TAG_CHILD_START,
    TAG_DOCKER_CONTAINER,
    TAG_ERROR,
    TAG_HOST,
    TAG_PID,
    TAG_START,
)
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def hostname() -> str:
    """This machine's name, as ``socket.gethostname()`` gives it (without importing socket,
    which costs more on the start of every run than the rest of this module)."""
    return os.uname().nodename


_boot_id: str | None = None


def boot_id() -> str:
    global _boot_id  # noqa: PLW0603 - read once: it is the same until the machine reboots
    if _boot_id is None:
        try:
            _boot_id = _BOOT_ID_FILE.read_text().strip()
        except OSError:
            _boot_id = ""
    return _boot_id


def process_start_ticks(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot; None if it does not run (a zombie,
    killed but not yet collected by its parent, counts as not running)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)  # one read: the kernel writes the whole line at once
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may contain spaces; fields after it are plain.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) <= 19 or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def boottime_ns() -> int:
    """Now on the clock the kernel stamps a new process's start with (CLOCK_BOOTTIME)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


# Whether this machine's /proc/<pid>/stat start times are the CLOCK_BOOTTIME ticks a spawn
# was bracketed by: None until one spawn was checked, then True or False for good.
_spawn_clock_agrees: bool | None = None


def spawned_start_ticks(pid: int, before_ns: int, after_ns: int) -> str | None:
    """Start time of ``pid``, a process this one spawned between two :func:`boottime_ns`
    readings, as :func:`process_start_ticks` gives it.

    Reading ``/proc/<pid>/stat`` right after the spawn waits until the child's exec has
    finished (about 1 ms for bash here, and a quick command is a zombie by then: no start
    at all). The kernel stamps the start on CLOCK_BOOTTIME and shows it in clock ticks, so
    when both readings fall in one tick, that tick is the start, known without waiting. It is
    checked against ``/proc`` on the first spawn that allows it; readings that straddle a
    tick, and machines where the two ever differ, read ``/proc``.
    """
    global _spawn_clock_agrees  # noqa: PLW0603 - the same for every spawn of this machine
    per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    first, last = before_ns // per_tick, after_ns // per_tick
    if first != last or _spawn_clock_agrees is False:
        return process_start_ticks(pid)
    if _spawn_clock_agrees:
        return str(first)
    recorded = process_start_ticks(pid)
    if recorded is None:  # ended before it could be checked: nothing left to identify
        return None
    _spawn_clock_agrees = recorded == str(first)
    return recorded


def child_tags(pid: int, start_ticks: str | None) -> dict[str, str]:
    """Tags that identify the command's process group, to stop it if its supervisor dies."""
    return {TAG_CHILD_PID: str(pid), TAG_CHILD_START: start_ticks or ""}


_own_identity: tuple[int, dict[str, str]] | None = None


def identity_tags(pid: int | None = None, start_ticks: str | None = None) -> dict[str, str]:
    """Tags that identify ``pid`` (default: this process) as a run's supervisor. A process
    this one just spawned comes with its ``start_ticks`` (:func:`spawned_start_ticks`);
    without them they are read from ``/proc``."""
    global _own_identity  # noqa: PLW0603 - this process's identity does not change
    if pid is None:
        own = os.getpid()
        if _own_identity is None or _own_identity[0] != own:  # computed again after a fork
            _own_identity = (own, identity_tags(own))
        return dict(_own_identity[1])
    return {
        TAG_HOST: hostname(),
        TAG_BOOT_ID: boot_id(),
        TAG_PID: str(pid),
        TAG_START: (start_ticks or process_start_ticks(pid)) or "",
    }


def _on_this_host(run: Run) -> bool:
    return run.tags.get(TAG_HOST) == hostname()


def supervisor_alive(run: Run) -> bool:
    """True when the recorded supervisor process still runs on this host."""
    tags = run.tags
    if not _on_this_host(run) or tags.get(TAG_BOOT_ID, "") != boot_id():
        return False
    try:
        pid = int(tags.get(TAG_PID, ""))
    except ValueError:
        return False
    started = process_start_ticks(pid)
    return started is not None and started == tags.get(TAG_START)


def is_orphaned(run: Run) -> bool:
    """A RUNNING run of this host whose supervisor is gone (crash, SIGKILL, reboot)."""
    if run.info.status != RunStatus.RUNNING or TAG_PID not in run.tags or not _on_this_host(run):
        return False
    return not supervisor_alive(run)


def outcome_recorded(run: Run) -> bool:
    """The run's status is final: terminal, and no supervisor of it still runs here. The
    project's own MLflow client may end the run (its atexit ``end_run`` writes FINISHED even
    when the script crashed) just before the supervisor records how the command ended."""
    if run.info.status not in TERMINAL_STATUSES:
        return False
    return TAG_PID not in run.tags or not supervisor_alive(run)


def reap(store: TrackingStore, run: Run) -> None:
    """Stop what an orphaned run left behind (its process group, its containers) and mark
    it FAILED, saying why."""
    if not is_orphaned(run):
        raise ExecutionException(f"Run '{run.run_id}' is not an orphaned run of this host")
    _kill_leftover_group(run)
    if TAG_DOCKER_CONTAINER in run.tags:
        from mlproj.envs.docker import remove_run_containers

        remove_run_containers(run.run_id)
    store.set_tags(
        run.run_id,
        {TAG_ERROR: "supervisor process disappeared (crash, kill or reboot); reaped"},
    )
    store.set_terminated(run.run_id, RunStatus.FAILED)


def _kill_leftover_group(run: Run) -> None:
    """SIGKILL the command's process group if it still runs (same pid *and* start time: a
    reused pid is left alone). Only meaningful on the same boot."""
    if run.tags.get(TAG_BOOT_ID, "") != boot_id():
        return
    try:
        pid = int(run.tags.get(TAG_CHILD_PID, ""))
    except ValueError:
        return
    if process_start_ticks(pid) == run.tags.get(TAG_CHILD_START):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def request_cancel(store: TrackingStore, run: Run, timeout: float = 30.0) -> str:
    """Ask a run's supervisor to stop it; wait until the run is terminal; return its status."""
    if run.info.status in TERMINAL_STATUSES:
        raise ExecutionException(f"Run '{run.run_id}' is already {run.info.status}")
    if TAG_PID not in run.tags:
        raise ExecutionException(
            f"Run '{run.run_id}' was not started by mlproj's local backend; cancel it where it runs"
        )
    if not _on_this_host(run):
        raise ExecutionException(
            f"Run '{run.run_id}' runs on host {run.tags.get(TAG_HOST)!r}; cancel it there"
        )
    if not supervisor_alive(run):
        raise ExecutionException(
            f"Run '{run.run_id}' is orphaned (its supervisor is gone); "
            "use `mlproj runs reap` to mark it FAILED"
        )
    if _supervises_its_parent(store, run):
        # A sweep's trial or a pipeline's step: its supervisor runs the others too, so only
        # this run's command is stopped; the supervisor records it KILLED and goes on.
        _stop_command(store, run)
    else:
        os.kill(int(run.tags[TAG_PID]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.get_run(run.run_id).info.status
        if status in TERMINAL_STATUSES:
            return status
        time.sleep(0.05)
    raise ExecutionException(f"Run '{run.run_id}' did not stop within {timeout:g} s")


def _supervises_its_parent(store: TrackingStore, run: Run) -> bool:
    """True when the run's supervisor is its parent run's supervisor (one sweep or pipeline
    process supervising every child)."""
    parent_id = run.tags.get(MLFLOW_PARENT_RUN_ID)
    if not parent_id:
        return False
    try:
        parent = store.get_run(parent_id)
    except ExecutionException:
        return False
    return all(parent.tags.get(t) == run.tags.get(t) for t in (TAG_HOST, TAG_PID, TAG_START))


def _stop_command(store: TrackingStore, run: Run, start_wait: float = 5.0) -> None:
    """Mark the run as cancelled, then stop its command's process group: SIGTERM, and
    SIGKILL after the grace period if its leader still runs (same pid and start time)."""
    from mlproj.settings import kill_grace

    store.set_tag(run.run_id, TAG_CANCEL, f"mlproj runs cancel (pid {os.getpid()})")
    deadline = time.monotonic() + start_wait
    while TAG_CHILD_PID not in run.tags:  # still being prepared: its command starts soon
        if time.monotonic() > deadline or run.info.status in TERMINAL_STATUSES:
            return  # the supervisor finds the mark when the command ends
        time.sleep(0.02)
        run = store.get_run(run.run_id)
    try:
        pid = int(run.tags[TAG_CHILD_PID])
    except ValueError:
        return
    started = run.tags.get(TAG_CHILD_START, "")
    if not started or process_start_ticks(pid) != started:
        return  # the command has ended already (or the pid is someone else's now)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    grace_end = time.monotonic() + kill_grace()
    while time.monotonic() < grace_end and process_start_ticks(pid) == started:
        time.sleep(0.02)
    if process_start_ticks(pid) == started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
