"""A real Docker registry the backend tests run on loopback, and waits for detached watchers
(the MLflow server is the shared ``mlflow_server`` fixture of tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from mlproj.tracking.base import TrackingStore
from tests.shared_servers import free_port


class Registry:
    """A real Docker registry (distribution) on loopback; the daemon treats 127.0.0.0/8 as
    insecure, so plain HTTP works for push and pull."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n",
            encoding="utf-8",
        )
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Registry:
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(f"http://{self.address}/v2/{repository}/tags/list") as r:
            return list(json.load(r).get("tags") or [])


def wait_for_watcher(pid: int | None, timeout: float = 60.0) -> None:
    """Wait until a detached watcher (a child of the test process) has exited."""
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # already reaped
        if done:
            return
        time.sleep(0.1)
    raise AssertionError(f"watcher {pid} did not exit")


def wait_for_status(store: TrackingStore, run_id: str, status: str, timeout: float) -> None:
    """Wait until the run has ``status``: nobody waits on an asynchronous run, so this is the
    detached watcher's record of the end."""
    deadline = time.monotonic() + timeout
    while store.get_run(run_id).info.status != status:
        assert time.monotonic() < deadline, "the watcher never recorded the end"
        time.sleep(0.2)
