"""A tracking server on the host's loopback stays reachable from the container (MLflow #2697):
a real ``mlflow server`` on 127.0.0.1 and the real mlflow client inside the Python image."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from mlproj.envs.docker import DockerManager
from tests.docker.docker_support import OpenRun, Recorder, execute, make_request, write_project
from tests.shared_servers import MlflowServer

pytestmark = pytest.mark.docker


def test_container_logs_to_a_loopback_tracking_server(
    tmp_path: Path, python_image: str, mlflow_server: MlflowServer
) -> None:
    from mlflow.tracking import MlflowClient

    loopback_server = mlflow_server.url  # the session's server, on 127.0.0.1
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
