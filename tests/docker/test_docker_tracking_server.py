"""A tracking server on the host's loopback stays reachable from the container (MLflow #2697):
a real ``mlflow server`` on 127.0.0.1 and the real mlflow client inside the Python image."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from docker_support import OpenRun, Recorder, execute, make_request, write_project

from mlproj.envs.docker import DockerManager

pytestmark = pytest.mark.docker


@pytest.fixture
def loopback_server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    workdir = tmp_path / "server"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}", "--serve-artifacts",
         "--artifacts-destination", str(workdir / "artifacts"), "--workers", "1"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (workdir / "server.log").read_text()[-2000:]
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, 9)
        process.wait()
        log.close()


def test_container_logs_to_a_loopback_tracking_server(
    tmp_path: Path, python_image: str, loopback_server: str
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=loopback_server)
    created = client.create_run("0")
    run = OpenRun(created.info.run_id, "0", created.info.artifact_uri, loopback_server)
    project = write_project(tmp_path / "proj", image=python_image, command="unused")
    script = (
        "import mlflow; mlflow.log_param('via', 'loopback'); mlflow.log_metric('m', 2.5); "
        "mlflow.log_text('from the container', 'note.txt')"
    )
    recorder = Recorder()
    plan = DockerManager().prepare(
        make_request(
            project,
            run,
            command=f"python3 -c {shlex.quote(script)}",
            recorder=recorder,
            docker_args={},  # no network chosen: mlproj picks the host network for loopback
        )
    )
    assert plan.argv[plan.argv.index("--network") + 1] == "host"
    assert any("loopback" in line for line in recorder.logs)
    assert plan.env["MLFLOW_TRACKING_URI"] == loopback_server
    result = execute(plan, timeout=300)
    assert result.returncode == 0, result.stderr
    logged = client.get_run(run.run_id)
    assert logged.data.params == {"via": "loopback"}
    assert logged.data.metrics == {"m": 2.5}
    note = client.download_artifacts(run.run_id, "note.txt", str(tmp_path))
    assert Path(note).read_text() == "from the container"
