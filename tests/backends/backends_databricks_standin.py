"""A local stand-in for the Databricks REST endpoints the databricks backend uses.

What it replaces and why: Databricks is a hosted service that cannot run here. This HTTP
server on loopback answers the real ``databricks-sdk`` (token auth) for exactly what mlproj
calls: DBFS ``get-status`` / ``create`` / ``add-block`` / ``close`` and Jobs ``runs/submit``,
``runs/get``, ``runs/get-output``, ``runs/cancel``. Its "cluster" really executes the submitted
``spark_python_task``: it runs the uploaded launcher with this machine's Python, mapping
``dbfs:/`` and ``/dbfs/`` paths onto its own DBFS folder, and reports PENDING -> RUNNING ->
TERMINATED with SUCCESS / FAILED / CANCELED and the task's stdout as the run output, as the
Jobs API does. Every request is recorded so tests can assert what was (not) called.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "dapi-standin-token"


class _RunState:
    def __init__(self, run_id: int, task_run_id: int, body: dict[str, Any]) -> None:
        self.run_id = run_id
        self.task_run_id = task_run_id
        self.body = body
        self.life_cycle_state = "PENDING"
        self.result_state: str | None = None
        self.state_message = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.output_path: Path | None = None
        self.cancelled = False


class DatabricksStandin:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbfs_root = root / "dbfs"
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, Any]] = []
        self.handles: dict[int, tuple[str, bytearray]] = {}
        self.runs: dict[int, _RunState] = {}
        self.next_id = 1000
        self.env: dict[str, str] = {}  # extra environment for the "cluster" processes
        self.server = _Server(self)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DatabricksStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            if run.process is not None and run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait()
        self.server.shutdown()
        self.server.server_close()

    def local(self, dbfs_path: str) -> Path:
        """Where a ``dbfs:/x``, ``/dbfs/x`` or ``/x`` DBFS path lives on this machine."""
        for prefix in ("dbfs:", "/dbfs"):
            if dbfs_path.startswith(prefix):
                dbfs_path = dbfs_path[len(prefix) :]
        return self.dbfs_root / dbfs_path.lstrip("/")

    def calls(self, method: str, path: str) -> list[Any]:
        with self.lock:
            return [body for m, p, body in self.requests if m == method and p == path]

    # -- the "cluster" ---------------------------------------------------------------------
    def _start(self, run: _RunState) -> None:
        task = run.body["tasks"][0]
        spark = task["spark_python_task"]
        launcher = self.local(spark["python_file"])
        params = [str(self.local(p)) if p.startswith("/dbfs/") else p for p in spark["parameters"]]
        run.output_path = self.root / f"run-{run.run_id}.log"
        with run.output_path.open("wb") as out:
            run.process = subprocess.Popen(
                [sys.executable, str(launcher), *params],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env},
            )
        run.life_cycle_state = "RUNNING"

    def _update(self, run: _RunState) -> None:
        if run.life_cycle_state == "PENDING":
            self._start(run)
            return
        if run.process is None or run.life_cycle_state != "RUNNING":
            return
        code = run.process.poll()
        if code is None:
            return
        run.life_cycle_state = "TERMINATED"
        if run.cancelled:
            run.result_state, run.state_message = "CANCELED", "Run cancelled."
        elif code == 0:
            run.result_state, run.state_message = "SUCCESS", ""
        else:
            run.result_state = "FAILED"
            run.state_message = f"Python task exited with code {code}"

    def run_json(self, run: _RunState) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": run.life_cycle_state,
            "state_message": run.state_message,
        }
        if run.result_state:
            state["result_state"] = run.result_state
        return {
            "run_id": run.run_id,
            "job_id": run.run_id + 1,
            "run_name": run.body.get("run_name"),
            "run_page_url": f"{self.url}/#job/{run.run_id + 1}/run/{run.run_id}",
            "state": state,
            "tasks": [{"run_id": run.task_run_id, "task_key": "mlproj", "state": state}],
        }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, error_code: str, message: str) -> None:
        self._send(code, {"error_code": error_code, "message": message})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        standin = self.server.standin
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else {}
        if method == "GET":
            body = {k: v[0] for k, v in parse_qs(url.query).items()}
        with standin.lock:
            standin.requests.append((method, url.path, body))
        if url.path == "/.well-known/databricks-config":  # host metadata: none here
            self._error(404, "NOT_FOUND", "no host metadata")
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._error(401, "UNAUTHENTICATED", "Invalid access token.")
            return
        handler = _ROUTES.get((method, url.path))
        if handler is None:
            self._error(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {url.path}'")
            return
        with standin.lock:
            handler(self, standin, body)


def _get_status(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    path = s.local(body["path"])
    if not path.is_file():
        h._error(
            404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {body['path']}."
        )
        return
    h._send(200, {"path": body["path"], "is_dir": False, "file_size": path.stat().st_size})


def _create(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    if s.local(body["path"]).exists() and not body.get("overwrite"):
        h._error(
            400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {body['path']}."
        )
        return
    s.next_id += 1
    s.handles[s.next_id] = (body["path"], bytearray())
    h._send(200, {"handle": s.next_id})


def _add_block(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    s.handles[int(body["handle"])][1].extend(base64.b64decode(body["data"]))
    h._send(200, {})


def _close(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    path, data = s.handles.pop(int(body["handle"]))
    target = s.local(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    h._send(200, {})


def _submit(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    tasks = body.get("tasks") or []
    if len(tasks) != 1 or "spark_python_task" not in tasks[0] or "new_cluster" not in tasks[0]:
        h._error(400, "INVALID_PARAMETER_VALUE", "expected one spark_python_task on a new_cluster")
        return
    if not s.local(tasks[0]["spark_python_task"]["python_file"]).is_file():
        h._error(400, "INVALID_PARAMETER_VALUE", "python_file does not exist")
        return
    s.next_id += 2
    s.runs[s.next_id] = _RunState(s.next_id, s.next_id + 1, body)
    h._send(200, {"run_id": s.next_id})


def _find_run(h: _Handler, s: DatabricksStandin, run_id: Any) -> _RunState | None:
    run = s.runs.get(int(run_id))
    if run is None:
        h._error(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
    return run


def _get_run(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    run = _find_run(h, s, body["run_id"])
    if run is not None:
        s._update(run)
        h._send(200, s.run_json(run))


def _get_output(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    task_run = int(body["run_id"])
    run = next((r for r in s.runs.values() if r.task_run_id == task_run), None)
    if run is None:
        h._error(400, "INVALID_PARAMETER_VALUE", f"Run {task_run} does not exist.")
        return
    logs = run.output_path.read_text() if run.output_path and run.output_path.exists() else ""
    h._send(200, {"logs": logs, "metadata": s.run_json(run)})


def _cancel(h: _Handler, s: DatabricksStandin, body: dict[str, Any]) -> None:
    run = _find_run(h, s, body["run_id"])
    if run is None:
        return
    run.cancelled = True
    if run.process is not None and run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGTERM)
    elif run.life_cycle_state == "PENDING":
        run.life_cycle_state, run.result_state = "TERMINATED", "CANCELED"
    h._send(200, {})


_ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/api/2.0/dbfs/get-status"): _get_status,
    ("POST", "/api/2.0/dbfs/create"): _create,
    ("POST", "/api/2.0/dbfs/add-block"): _add_block,
    ("POST", "/api/2.0/dbfs/close"): _close,
    ("POST", "/api/2.2/jobs/runs/submit"): _submit,
    ("GET", "/api/2.2/jobs/runs/get"): _get_run,
    ("GET", "/api/2.2/jobs/runs/get-output"): _get_output,
    ("POST", "/api/2.2/jobs/runs/cancel"): _cancel,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: DatabricksStandin) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin
