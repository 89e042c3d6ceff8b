"""Helpers for the CLI tests: the real ``mlproj`` in a subprocess, and tmux for a real terminal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )


class Tmux:
    """A real terminal: a detached tmux session on its own server socket."""

    def __init__(self, socket: Path, width: int = 160, height: int = 40) -> None:
        self.tmux = shutil.which("tmux") or "tmux"
        self.socket = socket
        self._call(
            "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
            "bash --noprofile --norc",
        )  # fmt: skip

    def _call(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def send(self, *keys: str) -> None:
        self._call("send-keys", "-t", "t", *keys)

    def type_line(self, line: str) -> None:
        self._call("send-keys", "-t", "t", "-l", line)
        self._call("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        return self._call("capture-pane", "-p", "-t", "t")

    def wait_for(self, found: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while not found(screen):
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched; it shows:\n{screen}")
            time.sleep(0.05)
            screen = self.screen()
        return screen

    def close(self) -> None:
        subprocess.run(
            [self.tmux, "-S", str(self.socket), "kill-server"],
            capture_output=True,
            timeout=30,
            check=False,
        )
