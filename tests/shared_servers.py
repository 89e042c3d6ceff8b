"""Real servers on loopback shared by the test folders: a free port, a folder served over HTTP
by a thread, and a real ``mlflow server`` process.

Imported as ``tests.shared_servers``: tests/ and its folders are packages, so every helper
module is named by its path from the repository root, with no ``sys.path`` edits.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without writing a line per request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_folder(
    root: Path, handler: type[http.server.SimpleHTTPRequestHandler] = QuietHandler
) -> Iterator[str]:
    """Serve ``root`` over http://127.0.0.1:<port> from a thread; yields that base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class MlflowServer:
    """One ``mlflow server`` process (artifacts proxied into ``workdir``); ``url`` is its
    tracking URI. No MLFLOW_* variable of the test process reaches it, only ``extra_env``."""

    def __init__(
        self,
        backend_uri: str,
        workdir: Path,
        *,
        file_store: bool = False,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()  # a port of its own, or the one of a server it replaces
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # MLflow >= 3.5 starts job-runner processes (huey) with every server: tests need none,
        # and on a 2-core machine they slow the server's start-up a lot.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        if file_store:
            env["MLFLOW_ALLOW_FILE_STORE"] = "true"
        env.update(extra_env or {})
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            *extra_args,
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 240.0) -> None:  # a loaded 2-core machine is slow
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            # The server runs uvicorn workers in its session: stop the whole group. A graceful
            # shutdown can linger on idle keep-alive connections; a test server need not wait.
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
