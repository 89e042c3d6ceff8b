"""DockerManager.prepare against the real daemon: the argv it returns is run as is and what the
container sees (values, variables, mounts, tracking store) is checked from inside."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mlproj.envs.docker import DockerManager
from mlproj.errors import ExecutionException
from tests.docker.docker_support import (
    Recorder,
    docker,
    execute,
    make_request,
    open_run,
    write_project,
)

pytestmark = pytest.mark.docker

TRICKY = """a b; echo INJECTED 'single' "double" $HOME `id` \\ end"""


def test_values_with_spaces_quotes_and_semicolons_arrive_intact(
    tmp_path: Path, docker_daemon: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_TEST_COPIED", TRICKY + "\nsecond line")
    project = write_project(
        tmp_path / "proj",
        image=docker_daemon,
        command="unused",
        docker_env={"environment": ["MLPROJ_TEST_COPIED", ["MLPROJ_TEST_SET", TRICKY]]},
    )
    command = (
        f"printf '[%s]\\n' {shlex.quote(TRICKY)}; "
        'printf "<%s>\\n" "$MLPROJ_TEST_SET"; printf "{%s}\\n" "$MLPROJ_TEST_COPIED"'
    )
    manager = DockerManager()
    manager.validate(project)
    plan = manager.prepare(make_request(project, open_run(tracking_uri), command=command))

    assert isinstance(plan.argv, list)
    assert plan.argv[-2:] == ["-c", command]  # the command is one argv item, never re-split
    assert TRICKY not in " ".join(plan.argv[:-1])  # variable values go by name, not argv
    assert plan.env["MLPROJ_TEST_SET"] == TRICKY
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"[{TRICKY}]\n<{TRICKY}>\n{{{TRICKY}\nsecond line}}\n"), (
        "a value was split, expanded or truncated"
    )
    assert "INJECTED\n" not in result.stdout


def test_missing_host_variable_is_named_before_and_during_prepare(
    tmp_path: Path, docker_daemon: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPROJ_TEST_ABSENT", raising=False)
    project = write_project(
        tmp_path / "proj",
        image=docker_daemon,
        command="true",
        docker_env={"environment": ["MLPROJ_TEST_ABSENT"]},
    )
    with pytest.raises(ExecutionException, match=r"MLPROJ_TEST_ABSENT.*not set") as excinfo:
        DockerManager().validate(project)
    assert "\n" not in str(excinfo.value)
    with pytest.raises(ExecutionException, match="MLPROJ_TEST_ABSENT"):
        DockerManager().prepare(make_request(project, open_run(tracking_uri)))


def test_run_variables_volumes_and_docker_args(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from a volume\n")
    project = write_project(
        tmp_path / "proj",
        image=docker_daemon,
        command="unused",
        docker_env={"volumes": [f"{shared}:/data"]},
    )
    run = open_run(tracking_uri)
    command = (
        "cat /data/in.txt; echo run=$MLFLOW_RUN_ID exp=$MLFLOW_EXPERIMENT_ID; "
        "echo uri=$MLFLOW_TRACKING_URI allow=$MLFLOW_ALLOW_FILE_STORE extra=$EXTRA; "
        "touch /cannot-write 2>/dev/null && echo root-writable || echo root-read-only"
    )
    docker_args = {"network": "none", "e": "EXTRA=one letter", "read-only": True, "rm": False}
    plan = DockerManager().prepare(
        make_request(project, run, command=command, docker_args=docker_args)
    )
    pairs = list(zip(plan.argv, plan.argv[1:], strict=False))
    assert ("-e", "EXTRA=one letter") in pairs
    assert "--read-only" in plan.argv
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "from a volume",
        f"run={run.run_id} exp=0",
        f"uri={tracking_uri} allow=true extra=one letter",
        "root-read-only",
    ]


def test_project_folder_is_the_working_directory_without_build(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    project = write_project(
        tmp_path / "proj",
        image=docker_daemon,
        command="pwd; cat data.txt; echo written-inside > out.txt",
        files={"data.txt": "project data\n"},
    )
    recorder = Recorder()
    plan = DockerManager().prepare(make_request(project, open_run(tracking_uri), recorder=recorder))
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/mlflow/projects/code\nproject data\n"
    assert (project.directory / "out.txt").read_text() == "written-inside\n"
    image_id = docker("image", "inspect", "--format", "{{.Id}}", docker_daemon).stdout.strip()
    assert recorder.tags["mlflow.docker.image.uri"] == docker_daemon
    assert recorder.tags["mlflow.docker.image.id"] == image_id
    assert recorder.tags["mlproj.docker.container"] in plan.argv


def test_path_parameters_are_mounted_at_the_same_path(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    outside = tmp_path / "outside dir, with comma"
    outside.mkdir()
    data = outside / "input.csv"
    data.write_text("1,2,3\n")
    output = tmp_path / "results" / "out.txt"
    output.parent.mkdir()
    project = write_project(tmp_path / "proj", image=docker_daemon, command="unused")
    command = (
        f"cat {shlex.quote(str(data))}; echo result > {shlex.quote(str(output))}; "
        f"(echo x >> {shlex.quote(str(data))}) 2>/dev/null || echo input-read-only"
    )
    plan = DockerManager().prepare(
        make_request(
            project,
            open_run(tracking_uri),
            command=command,
            local_paths={"data": data, "output": output},
        )
    )
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1,2,3\ninput-read-only\n"
    assert output.read_text() == "result\n"
    assert data.read_text() == "1,2,3\n"


def test_busybox_command_writes_into_the_run_seen_by_mlflow(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    """No Python in the image: the command writes an artifact and a metric line straight into
    the mounted file store; the real mlflow client reads both afterwards."""
    from mlflow.tracking import MlflowClient

    project = write_project(tmp_path / "proj", image=docker_daemon, command="unused")
    run = open_run(tracking_uri)
    command = (
        'root="${MLFLOW_TRACKING_URI#file://}/$MLFLOW_EXPERIMENT_ID/$MLFLOW_RUN_ID"; '
        'echo "made in a container" > "$root/artifacts/note.txt"; '
        'echo "1700000000000 0.75 3" > "$root/metrics/accuracy"'
    )
    plan = DockerManager().prepare(make_request(project, run, command=command))
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.get_run(run.run_id).data.metrics == {"accuracy": 0.75}
    local = client.download_artifacts(run.run_id, "note.txt", str(tmp_path))
    assert Path(local).read_text() == "made in a container\n"


def test_python_image_logs_with_the_real_mlflow_client(
    tmp_path: Path, python_image: str, tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient

    project = write_project(tmp_path / "proj", image=python_image, command="unused")
    run = open_run(tracking_uri)
    script = (
        "import mlflow; mlflow.log_param('where', 'container'); "
        "mlflow.log_metric('loss', 0.25, step=2); mlflow.log_text('hello', 'hello.txt')"
    )
    plan = DockerManager().prepare(
        make_request(project, run, command=f"python3 -c {shlex.quote(script)}")
    )
    assert plan.argv[-3] == "bash"  # Debian image: bash found by the probe
    result = execute(plan, timeout=300)
    assert result.returncode == 0, result.stderr
    logged = MlflowClient(tracking_uri=tracking_uri).get_run(run.run_id)
    assert logged.data.params == {"where": "container"}
    assert logged.data.metrics == {"loss": 0.25}
    artifact = MlflowClient(tracking_uri=tracking_uri).download_artifacts(
        run.run_id, "hello.txt", str(tmp_path)
    )
    assert Path(artifact).read_text() == "hello"


def test_busybox_runs_with_sh(tmp_path: Path, docker_daemon: str, tracking_uri: str) -> None:
    project = write_project(tmp_path / "proj", image=docker_daemon, command="echo $0")
    plan = DockerManager().prepare(make_request(project, open_run(tracking_uri)))
    assert plan.argv[-3:-1] == ["sh", "-c"]
    assert execute(plan).stdout == "sh\n"


def test_init_can_be_turned_off(tmp_path: Path, docker_daemon: str, tracking_uri: str) -> None:
    project = write_project(tmp_path / "proj", image=docker_daemon, command="echo $$")
    manager = DockerManager()
    with_init = manager.prepare(make_request(project, open_run(tracking_uri)))
    assert "--init" in with_init.argv
    assert execute(with_init).stdout != "1\n"  # the init is PID 1, the shell is not
    without = manager.prepare(
        make_request(
            project, open_run(tracking_uri), docker_args={"network": "none", "init": "false"}
        )
    )
    assert "--init" not in without.argv and "--init=false" in without.argv
    assert execute(without).stdout == "1\n"


def test_cancel_stops_and_removes_the_container(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    project = write_project(tmp_path / "proj", image=docker_daemon, command="sleep 300")
    plan = DockerManager().prepare(make_request(project, open_run(tracking_uri)))
    name = plan.argv[plan.argv.index("--name") + 1]
    process = subprocess.Popen(
        plan.argv,
        env=plan.env,
        cwd=plan.cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while docker("ps", "-q", "--filter", f"name=^{name}$").stdout.strip() == "":
            assert time.monotonic() < deadline, "container never started"
            assert process.poll() is None, "docker run exited early"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGTERM)
        # --init forwards SIGTERM to the command: docker run ends well within a grace period.
        process.wait(timeout=8)
        for command in plan.on_cancel:
            subprocess.run(command, env=plan.env, capture_output=True, check=False, timeout=60)
        assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == ""
    finally:
        if process.poll() is None:
            process.kill()
        docker("rm", "-f", name)


def test_sqlite_store_folder_is_mounted_and_uri_made_absolute(
    tmp_path: Path, docker_daemon: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "mlflow.db").write_text("not really a database")
    file_store = (tmp_path / "mlruns").as_uri()
    run = open_run(file_store)
    run.tracking_uri = "sqlite:///db/mlflow.db"  # relative to the caller's folder
    project = write_project(tmp_path / "proj", image=docker_daemon, command="unused")
    plan = DockerManager().prepare(
        make_request(
            project,
            run,
            command='echo "$MLFLOW_TRACKING_URI"; cat "${MLFLOW_TRACKING_URI#sqlite:///}"',
        )
    )
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sqlite:///{tmp_path}/db/mlflow.db\nnot really a database"


def test_container_name_from_docker_args_is_used_for_cancel(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    project = write_project(tmp_path / "proj", image=docker_daemon, command="true")
    recorder = Recorder()
    plan = DockerManager().prepare(
        make_request(
            project,
            open_run(tracking_uri),
            recorder=recorder,
            docker_args={"network": "none", "name": "my-container"},
        )
    )
    assert plan.argv.count("--name") == 1
    assert plan.argv[plan.argv.index("--name") + 1] == "my-container"
    assert plan.on_cancel == [[plan.argv[0], "rm", "-f", "my-container"]]
    assert recorder.tags["mlproj.docker.container"] == "my-container"


def test_remove_run_containers_finds_them_by_label(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    """What `runs cancel` / `runs reap` can use when no supervisor is left to cancel."""
    from mlproj.envs.docker import remove_run_containers

    project = write_project(tmp_path / "proj", image=docker_daemon, command="sleep 300")
    run = open_run(tracking_uri)
    plan = DockerManager().prepare(make_request(project, run))
    name = plan.argv[plan.argv.index("--name") + 1]
    process = subprocess.Popen(
        plan.argv, env=plan.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not docker("ps", "-q", "--filter", f"name=^{name}$").stdout.strip():
            assert time.monotonic() < deadline, "container never started"
            time.sleep(0.2)
        assert remove_run_containers(run.run_id) == [name]
        process.wait(timeout=30)
        assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == ""
        assert remove_run_containers(run.run_id) == []
    finally:
        if process.poll() is None:
            process.kill()
        docker("rm", "-f", name)


def test_variables_the_docker_client_reads_are_passed_inline(
    tmp_path: Path, docker_daemon: str, tracking_uri: str
) -> None:
    """A container PATH or DOCKER_HOST must not redirect or break the docker client."""
    project = write_project(
        tmp_path / "proj",
        image=docker_daemon,
        command='echo "$PATH|$DOCKER_HOST|$PLAIN"',
        docker_env={
            "environment": [
                ["PATH", "/bin:/custom"],
                ["DOCKER_HOST", "tcp://inside:2375"],
                ["PLAIN", "by name"],
            ]
        },
    )
    plan = DockerManager().prepare(make_request(project, open_run(tracking_uri)))
    assert "PATH=/bin:/custom" in plan.argv and "DOCKER_HOST=tcp://inside:2375" in plan.argv
    assert "PLAIN" in plan.argv and plan.env["PLAIN"] == "by name"
    assert plan.env.get("DOCKER_HOST") != "tcp://inside:2375"
    result = execute(plan)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/bin:/custom|tcp://inside:2375|by name\n"
