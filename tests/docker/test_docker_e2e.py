"""Whole docker runs through ``mlproj.run``: status, tags, artifacts, cancel -> KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlproj
from mlproj.tracking import get_store
from tests.docker.docker_support import docker, write_project

pytestmark = pytest.mark.docker

WRITE_ARTIFACT = """root="${MLFLOW_TRACKING_URI#file://}/$MLFLOW_EXPERIMENT_ID/$MLFLOW_RUN_ID"
printf '%s' "$1" > "$root/artifacts/message.txt"
"""


def test_docker_project_runs_through_mlproj_run(
    tmp_path: Path,
    docker_daemon: str,
    tracking_uri: str,
    project_name: str,
) -> None:
    from mlflow.tracking import MlflowClient

    write_project(
        tmp_path / "proj",
        name=project_name,
        image=docker_daemon,
        command="sh write.sh {message}",
        parameters={"message": {"type": "string"}},
        files={"write.sh": WRITE_ARTIFACT},
    )
    message = "spaces, 'quotes'; and $dollars"
    submitted = mlproj.run(
        str(tmp_path / "proj"),
        parameters={"message": message},
        docker_args={"network": "none"},
        build_image=True,
    )
    assert submitted.get_status() == "FINISHED"
    run = MlflowClient(tracking_uri=tracking_uri).get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"message": message}
    tags = run.data.tags
    assert tags["mlflow.project.env"] == "docker"
    assert tags["mlflow.docker.image.uri"].startswith(f"{project_name}:")
    assert tags["mlflow.docker.image.id"].startswith("sha256:")
    artifact = MlflowClient(tracking_uri=tracking_uri).download_artifacts(
        submitted.run_id, "message.txt", str(tmp_path)
    )
    assert Path(artifact).read_text() == message


def test_cancelled_docker_run_is_killed_and_its_container_removed(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient

    write_project(tmp_path / "proj", image=docker_daemon, command="sleep 300")
    submitted = mlproj.run(
        str(tmp_path / "proj"), docker_args={"network": "none"}, synchronous=False
    )
    client = MlflowClient(tracking_uri=tracking_uri)
    deadline = time.monotonic() + 60
    while "mlproj.docker.container" not in client.get_run(submitted.run_id).data.tags:
        assert time.monotonic() < deadline, "container never prepared"
        time.sleep(0.2)
    name = client.get_run(submitted.run_id).data.tags["mlproj.docker.container"]
    while not docker("ps", "-q", "--filter", f"name=^{name}$").stdout.strip():
        assert time.monotonic() < deadline, "container never started"
        time.sleep(0.2)
    # docker_args reach asynchronous runs too (MLflow issue 3562 dropped them).
    network = docker("inspect", "--format", "{{.HostConfig.NetworkMode}}", name).stdout.strip()
    assert network == "none"
    started = time.monotonic()
    submitted.cancel()
    assert time.monotonic() - started < 8, "cancel waited for the grace period"
    assert submitted.get_status() == "KILLED"
    assert client.get_run(submitted.run_id).info.status == "KILLED"
    deadline = time.monotonic() + 30
    while docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip():
        assert time.monotonic() < deadline, f"container {name} still exists after cancel"
        time.sleep(0.2)


def test_cli_run_with_docker_args(tmp_path: Path, docker_daemon: str, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    write_project(
        tmp_path / "proj",
        image=docker_daemon,
        command="echo value={value}; echo pid=$$; echo $MLFLOW_EXPERIMENT_ID",
        parameters={"value": {"type": "string"}},
    )
    result = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(tmp_path / "proj"), "-P", "value=a;b c",
         "-A", "network=none", "-A", "init=false", "--experiment-name", "docker-cli"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("docker-cli")
    assert experiment is not None
    assert result.stdout.splitlines() == ["value=a;b c", "pid=1", experiment.experiment_id]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.docker.image.uri"] == docker_daemon


def test_sigkilled_mlproj_leaves_no_container_once_runs_are_listed(
    tmp_path: Path, docker_daemon: str
) -> None:
    """SIGKILL of ``mlproj run`` and of a detached supervisor while their containers run: the
    next ``mlproj runs list`` removes both containers and marks both runs FAILED."""
    write_project(tmp_path / "proj", image=docker_daemon, command="sleep 300")
    argv = [sys.executable, "-m", "mlproj", "run", str(tmp_path / "proj"), "-A", "network=none"]
    cli = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    detached = subprocess.run(
        [*argv, "--no-wait"], capture_output=True, text=True, timeout=300, check=False
    )
    assert detached.returncode == 0, detached.stderr
    store = get_store()
    containers: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 120
        while len(containers) < 2:
            assert time.monotonic() < deadline, "the containers never started"
            time.sleep(0.2)
            for run in store.search_runs([store.resolve_experiment()]):
                name = run.tags.get("mlproj.docker.container")
                if name and docker("ps", "-q", "--filter", f"name=^{name}$").stdout.strip():
                    containers[run.run_id] = name
        for run_id in containers:
            pid = int(store.get_run(run_id).tags["mlproj.supervisor.pid"])
            os.kill(pid, signal.SIGKILL)  # the CLI itself, or the detached supervisor
        cli.wait(timeout=30)
        listed = subprocess.run(
            [sys.executable, "-m", "mlproj", "runs", "list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        for run_id, name in containers.items():
            run = store.get_run(run_id)
            assert run.info.status == "FAILED", run_id
            assert "supervisor process disappeared" in run.tags["mlproj.error"]
            assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == "", name
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        for name in containers.values():
            docker("rm", "-f", name)


CONTAINER_TRAIN = """\
import os, sys
import mlflow
mlflow.log_param("from_container", os.environ["MLFLOW_TRACKING_URI"])
mlflow.log_metric("score", float(sys.argv[1]) * 2)
mlflow.log_text("written in the container", "container/note.txt")
print("container says", sys.argv[1])
"""


def test_docker_project_on_the_default_sqlite_store(
    tmp_path: Path, python_image: str, project_name: str
) -> None:
    """No tracking URI anywhere: the run goes to ./mlflow.db, whose folder is mounted into the
    container, and the project's own MLflow there (the host's, mounted: the image has only
    mlflow-skinny) logs into the same run, its artifact landing under ./mlruns as MLflow's."""
    import mlflow

    site = Path(mlflow.__file__).parents[1]
    if sys.version_info[:2] != (3, 11):
        pytest.skip(f"the host's packages are mounted into {python_image}'s Python 3.11")
    write_project(
        tmp_path / "proj",
        name=project_name,
        image=python_image,
        command="python3 train.py {alpha}",
        parameters={"alpha": {"type": "float", "default": 0.5}},
        docker_env={
            "volumes": [f"{site}:/host-site:ro"],
            "environment": [["PYTHONPATH", "/host-site"]],
        },
        files={"train.py": CONTAINER_TRAIN},
    )
    folder = tmp_path / "work"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(tmp_path / "proj"), "-P", "alpha=0.25",
         "-A", "network=none"],
        capture_output=True, text=True, timeout=600, cwd=folder, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "container says 0.25" in done.stdout
    from mlproj.tracking.sqlite_store import SqliteStore

    db = folder / "mlflow.db"
    (run,) = SqliteStore(f"sqlite:///{db}").search_runs(["0"])
    assert run.info.status == "FINISHED"
    assert run.params == {"alpha": "0.25", "from_container": f"sqlite:///{db}"}
    assert run.metrics == {"score": 0.5}
    artifacts = folder / "mlruns" / "0" / run.run_id / "artifacts"
    assert (artifacts / "container" / "note.txt").read_text() == "written in the container"
    assert "container says 0.25" in (artifacts / "mlproj" / "output.log").read_text()
