"""Load: 200 concurrent ``mlproj run --no-wait`` into one file store and into one MLflow server.

The 200 runs are alive together: each command waits until all 200 have started (it opens a
FIFO, which blocks without using CPU), then all end at once, so 200 supervisors write their
ends into one store together. Every run must be
recorded once, FINISHED, with its params and its output log.

The figures for the issue's note are measured exactly: the test process becomes the
subreaper of the detached supervisors (``PR_SET_CHILD_SUBREAPER``), so ``wait4`` gives the
peak RSS and CPU time of every client and every supervisor; the proportional memory (PSS) of
the 200 supervisors is read while they all run.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlproj.tracking import get_store
from mlproj.tracking.artifacts import read_artifact
from tests.shared_servers import MlflowServer

pytestmark = pytest.mark.slow

RUNS = 200
BATCH = 25  # clients started at once; the supervisors they detach all run together
MLPROJECT = """name: load
entry_points:
  main:
    parameters:
      index: {type: int}
      go: {type: string}
    command: "echo waiting-{index}; read -r _ < {go}; echo line-{index}"
"""
PR_SET_CHILD_SUBREAPER = 36


@contextmanager
def _subreaper() -> Iterator[None]:
    """Orphans of our children (the detached supervisors) become our children meanwhile."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _children(marker: bytes) -> list[int]:
    """Our live children whose command line holds ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and marker in cmdline and stat[0] != b"Z":
            found.append(int(entry.name))
    return found


def _commands_waiting(go: Path) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if str(go).encode() in cmdline and b"mlproj" not in cmdline:
                count += 1
    return count


def _release(go: Path, timeout: float = 120) -> None:
    """Open the FIFO for writing and close it: every command blocked on it reads its end.
    Again while any command is left (one that had not opened it yet)."""
    deadline = time.monotonic() + timeout
    while _commands_waiting(go) and time.monotonic() < deadline:
        try:
            os.close(os.open(go, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: no reader has it open at this moment
            pass
        time.sleep(0.2)


def _pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


class Usage:
    """Peak RSS (KiB) and CPU seconds of the processes waited for."""

    def __init__(self) -> None:
        self.peak_kib: list[int] = []
        self.cpu_s = 0.0

    def wait(self, pid: int) -> int:
        _, status, usage = os.wait4(pid, 0)
        self.peak_kib.append(usage.ru_maxrss)
        self.cpu_s += usage.ru_utime + usage.ru_stime
        return os.waitstatus_to_exitcode(status)

    def text(self) -> str:
        return (
            f"peak RSS median {statistics.median(self.peak_kib) / 1024:.0f} MiB, "
            f"max {max(self.peak_kib) / 1024:.0f} MiB; CPU {self.cpu_s:.1f} s"
        )


def _start_all(
    project: Path, tracking_uri: str, go: Path, clients: Usage
) -> tuple[list[str], float]:
    """Start RUNS detached runs, BATCH clients at a time; the run ids, and when they all were
    started (the clients have exited)."""
    run_ids: list[str] = []
    for first in range(0, RUNS, BATCH):
        batch = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlproj",
                    "run",
                    str(project),
                    "--no-wait",
                    "--quiet",
                    "--tracking-uri",
                    tracking_uri,
                    "-P",
                    f"index={index}",
                    "-P",
                    f"go={go}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for index in range(first, min(first + BATCH, RUNS))
        ]
        for client in batch:
            assert client.stdout is not None and client.stderr is not None
            out, err = client.stdout.read(), client.stderr.read()  # both small: no deadlock
            client.stdout.close()
            client.stderr.close()
            client.returncode = clients.wait(client.pid)
            assert client.returncode == 0, err.decode()
            run_ids.append(out.decode().strip().splitlines()[-1].split()[-1])
    return run_ids, time.monotonic()


def _wait_all_terminal(tracking_uri: str, run_ids: list[str], timeout: float = 600) -> None:
    store = get_store(tracking_uri)
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        pending = {r for r in pending if store.get_run_status(r) in ("RUNNING", "SCHEDULED")}
        time.sleep(0.5)
    assert not pending, f"{len(pending)} runs still running after {timeout:g} s"


def _check_runs(tracking_uri: str, run_ids: list[str]) -> None:
    store = get_store(tracking_uri)
    assert len(set(run_ids)) == RUNS
    recorded = store.search_runs([store.resolve_experiment()], max_results=10 * RUNS)
    assert sorted(r.run_id for r in recorded) == sorted(run_ids), "a run recorded twice or lost"
    seen_indexes = set()
    for run in recorded:
        assert run.info.status == "FINISHED", (run.run_id, run.tags.get("mlproj.error"))
        index = run.params["index"]
        seen_indexes.add(index)
        log = read_artifact(store, run, "mlproj/output.log")
        assert log is not None, run.run_id
        assert f"waiting-{index}\nline-{index}" in log.decode(), run.run_id
    assert seen_indexes == {str(i) for i in range(RUNS)}


def _load(tmp_path: Path, tracking_uri: str, kind: str) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    go = tmp_path / "go"
    os.mkfifo(go)
    clients, supervisors = Usage(), Usage()
    running: list[int] = []
    with _subreaper():
        started = time.monotonic()
        try:
            run_ids, all_started = _start_all(project, tracking_uri, go, clients)
            deadline = time.monotonic() + 300
            while _commands_waiting(go) < RUNS:  # all 200 runs alive together
                assert time.monotonic() < deadline, f"only {_commands_waiting(go)} runs started"
                time.sleep(0.2)
            running = _children(b"mlproj.local_run.supervisor")
            assert len(running) == RUNS, len(running)
            pss_mib = sum(_pss_kib(pid) for pid in running) / 1024
            load = os.getloadavg()[0]
            released = time.monotonic()
            _release(go)
            _wait_all_terminal(tracking_uri, run_ids)
            ended = time.monotonic()
        finally:
            _release(go)
            for pid in _children(b"mlproj.local_run.supervisor"):
                supervisors.wait(pid)
        # Those that had ended were zombies of ours: collect them too.
        for pid in running:
            try:
                supervisors.wait(pid)
            except ChildProcessError:
                pass  # waited for above
    print(
        f"\nload[{kind}]: {RUNS} runs: started in {all_started - started:.1f} s, all ended "
        f"{ended - released:.1f} s after the release, {ended - started:.1f} s in all "
        f"(load {load:.1f}); clients: {clients.text()}; supervisors: {supervisors.text()}; "
        f"PSS of the {RUNS} supervisors while all run {pss_mib:.0f} MiB "
        f"({pss_mib / RUNS:.1f} MiB per run)"
    )
    assert len(supervisors.peak_kib) == RUNS
    _check_runs(tracking_uri, run_ids)


def test_200_concurrent_detached_runs_into_one_file_store(tmp_path: Path) -> None:
    _load(tmp_path, (tmp_path / "mlruns").as_uri(), "file store")


def test_200_concurrent_detached_runs_into_one_mlflow_server(tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    workdir.mkdir()
    # Its own server (not the session's shared one): the load must not slow other tests.
    server = MlflowServer(f"sqlite:///{workdir / 'mlflow.db'}", workdir)
    try:
        _load(tmp_path, server.url, "MLflow server")
    finally:
        server.stop()
