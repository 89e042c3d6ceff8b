"""Kubernetes runs end to end: real image build in the local Docker daemon, real push to a
loopback registry, the real ``kubernetes`` client against the API stand-in (see
backends_k8s_standin.py for what it replaces), containers run by the stand-in's kubelet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends_k8s_standin import KubernetesStandin
from backends_servers import Registry, wait_for_status, wait_for_watcher

import mlproj
from mlproj.backends.kubernetes.connection import api_client
from mlproj.docker.images import push_image
from mlproj.errors import ExecutionException
from mlproj.submitted import SubmittedRun
from mlproj.tracking import get_store
from shared_servers import MlflowServer

pytestmark = pytest.mark.docker

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: replaced-by-mlproj
  namespace: ml
spec:
  backoffLimit: {backoff}
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: replaced
          image: replaced
          env:
            - name: FROM_TEMPLATE
              value: template-value
"""


def _project(tmp_path: Path, image: str, command: str, extra_docker: str = "") -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: K8s Demo\n"
        "docker_env:\n"
        f"  image: {image}\n"
        f"{extra_docker}"
        "entry_points:\n"
        "  main:\n"
        "    parameters:\n"
        "      name: {type: string, default: world}\n"
        f"    command: {command}\n"
    )
    (project / "code.txt").write_text("project code\n")
    return project


def _config(tmp_path: Path, registry: Registry, backoff: int = 0, **extra: object) -> dict:
    template = tmp_path / "job.yaml"
    template.write_text(TEMPLATE.format(backoff=backoff))
    return {
        "kube-job-template-path": str(template),
        "repository-uri": f"{registry.address}/mlproj-test/k8s-demo",
        "kube-context": "standin",
        "poll-interval": 0.2,
        **extra,
    }


def _run_async(tmp_path: Path, registry: Registry, project: Path) -> SubmittedRun:
    return mlproj.run(
        str(project),
        backend="kubernetes",
        backend_config=_config(tmp_path, registry),
        synchronous=False,
    )


def _wait_for_running_pod(k8s: KubernetesStandin) -> None:
    k8s.wait_for(lambda s: any(p["status"]["phase"] == "Running" for p in s.pods.values()))


def _artifact_log(run_id: str) -> str:
    store = get_store()
    folder = store.local_artifact_dir(run_id)
    assert folder is not None
    return (folder / "mlproj" / "output.log").read_text()


def test_project_runs_as_a_job_and_its_log_is_kept(
    tmp_path: Path,
    k8s: KubernetesStandin,
    registry: Registry,
    docker_ready: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("mounted data\n")
    monkeypatch.setenv("MLPROJ_TEST_FROM_HOST", "host-value")
    project = _project(
        tmp_path,
        docker_ready,
        '"echo $GREETING {name} $MLPROJ_TEST_FROM_HOST $FROM_TEMPLATE; '
        'cat /data/input.txt code.txt; echo run=$MLFLOW_RUN_ID"',
        extra_docker=(
            "  environment: [[GREETING, hello], MLPROJ_TEST_FROM_HOST]\n"
            f"  volumes: ['{data}:/data:ro']\n"
        ),
    )
    submitted = mlproj.run(
        str(project),
        parameters={"name": "k8s world"},
        backend="kubernetes",
        backend_config=_config(tmp_path, registry),
    )
    run_id = submitted.run_id
    assert submitted.get_status() == "FINISHED"

    run = get_store().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.tags["mlflow.project.env"] == "docker"
    assert run.tags["mlflow.project.backend"] == "kubernetes"
    uri = run.tags["mlflow.docker.image.uri"]
    repository, tag = uri.rsplit(":", 1)
    assert repository == f"{registry.address}/mlproj-test/k8s-demo"
    assert tag in registry.tags("mlproj-test/k8s-demo")
    digest = run.tags["mlflow.docker.image.id"]
    assert digest.startswith("sha256:")
    job_name = run.tags["mlproj.kubernetes.job"]
    assert job_name.startswith("k8s-demo-")

    log = _artifact_log(run_id)
    assert "hello k8s world host-value template-value" in log
    assert "mounted data" in log
    assert "project code" in log  # the code was baked into the image
    assert f"run={run_id}" in log

    created = k8s.state.created_jobs[-1]
    assert created["metadata"]["namespace"] == "ml"
    container = created["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{repository}@{digest}"
    assert container["command"][:2] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_RUN_ID"] == run_id
    assert env["GREETING"] == "hello"
    assert env["FROM_TEMPLATE"] == "template-value"


def test_failing_container_marks_the_run_failed_with_the_reason(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    project = _project(tmp_path, docker_ready, '"echo about to fail {name}; exit 3"')
    with pytest.raises(ExecutionException, match=r"Run \(ID '(\w+)'\) failed") as caught:
        mlproj.run(
            str(project),
            backend="kubernetes",
            backend_config=_config(tmp_path, registry, backoff=1),
        )
    run_id = caught.value.message.split("'")[1]
    run = get_store().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"].startswith("BackoffLimitExceeded")
    log = _artifact_log(run_id)
    # backoffLimit 1: the pod ran twice and both logs are kept.
    assert log.count("about to fail world") == 2
    assert log.count("=== pod ") == 2


def test_cancel_deletes_the_job_and_its_pods_and_marks_the_run_killed(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    project = _project(tmp_path, docker_ready, '"echo started {name}; sleep 300"')
    submitted = _run_async(tmp_path, registry, project)
    deadline = time.monotonic() + 60
    while submitted.get_status() != "RUNNING":
        assert time.monotonic() < deadline, "the Job never started"
        time.sleep(0.2)
    _wait_for_running_pod(k8s)
    containers = list(k8s.state.containers.values())
    time.sleep(0.5)  # let the container print its first line
    submitted.cancel()

    assert submitted.get_status() == "KILLED"
    assert not submitted.wait()
    assert get_store().get_run(submitted.run_id).info.status == "KILLED"
    assert k8s.state.jobs == {}
    assert k8s.state.pods == {}
    assert ("DELETE", f"/apis/batch/v1/namespaces/ml/jobs/{submitted.job_name}") in (  # type: ignore[attr-defined]
        k8s.state.requests
    )
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name={containers[0]}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""
    assert "started world" in _artifact_log(submitted.run_id)
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_async_run_is_recorded_by_the_detached_watcher(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    project = _project(tmp_path, docker_ready, "echo async {name}")
    submitted = _run_async(tmp_path, registry, project)
    # Nobody calls wait(): the watcher process records the end on its own.
    wait_for_status(get_store(), submitted.run_id, "FINISHED", timeout=60)
    created = k8s.state.created_jobs[-1]
    assert created["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "echo",
        "async",
        "world",
    ]
    deadline = time.monotonic() + 10
    while True:  # the artifact is written just before the status
        try:
            assert _artifact_log(submitted.run_id) == "async world\n"
            break
        except FileNotFoundError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]


def test_unknown_namespace_fails_the_run_with_the_api_message(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    project = _project(tmp_path, docker_ready, "echo hi")
    config = _config(tmp_path, registry)
    Path(config["kube-job-template-path"]).write_text(
        TEMPLATE.format(backoff=0).replace("namespace: ml", "namespace: nope")
    )
    with pytest.raises(ExecutionException, match='404 Not Found namespaces "nope" not found'):
        mlproj.run(str(project), backend="kubernetes", backend_config=config)
    runs = get_store().search_runs(["0"])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "namespaces" in runs[0].tags["mlproj.error"]


def test_push_errors_are_reported(docker_ready: str, registry: Registry) -> None:
    with pytest.raises(ExecutionException, match="Pushing Docker image .*absent:nope failed"):
        push_image(f"{registry.address}/mlproj-test/absent:nope")
    # A registry that is down.
    subprocess.run(["docker", "tag", docker_ready, "127.0.0.1:9/mlproj-test/down:1"], check=True)
    try:
        with pytest.raises(ExecutionException, match="Pushing Docker image 127.0.0.1:9/"):
            push_image("127.0.0.1:9/mlproj-test/down:1")
    finally:
        subprocess.run(["docker", "rmi", "127.0.0.1:9/mlproj-test/down:1"], check=False)


def test_no_kubeconfig_and_not_in_a_cluster_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ExecutionException, match="not running inside a cluster"):
        api_client(None)
    with pytest.raises(ExecutionException, match="kube-context 'prod'"):
        api_client("prod")


def _cli(project: Path, config: dict, *extra: str) -> subprocess.Popen[str]:
    import json
    import os
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "-b", "kubernetes"]
        + ["-c", json.dumps(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=0,
        env=dict(os.environ),
    )


def test_cli_timeout_becomes_the_job_deadline(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    project = _project(tmp_path, docker_ready, '"echo slow {name}; sleep 300"')
    proc = _cli(project, _config(tmp_path, registry), "--timeout", "2")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "failed" in err
    (run,) = get_store().search_runs(["0"])
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"].startswith("DeadlineExceeded")
    assert k8s.state.created_jobs[-1]["spec"]["activeDeadlineSeconds"] == 2
    assert "slow world" in _artifact_log(run.info.run_id)


def test_ctrl_c_on_the_cli_cancels_the_job(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    import signal

    project = _project(tmp_path, docker_ready, '"echo waiting {name}; sleep 300"')
    proc = _cli(project, _config(tmp_path, registry))
    _wait_for_running_pod(k8s)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run,) = get_store().search_runs(["0"])
    assert run.info.status == "KILLED"
    assert k8s.state.jobs == {}
    assert k8s.state.pods == {}


def test_another_process_can_find_and_cancel_the_job_from_the_run_tags(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    from mlproj.backends.remote.reattach import reattach

    project = _project(tmp_path, docker_ready, '"echo remote {name}; sleep 300"')
    submitted = _run_async(tmp_path, registry, project)
    _wait_for_running_pod(k8s)
    store = get_store()  # a fresh store object: only the tags connect it to the Job
    handle = reattach(store.get_run(submitted.run_id), store)
    assert handle is not None
    assert handle.get_status() == "RUNNING"
    handle.cancel()
    assert store.get_run(submitted.run_id).info.status == "KILLED"
    assert k8s.state.jobs == {}
    wait_for_watcher(submitted.watcher_pid)  # type: ignore[attr-defined]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "MLproject").write_text("name: plain\nentry_points:\n  main:\n    command: 'true'\n")
    local = mlproj.run(str(plain), env_manager="local")
    assert reattach(store.get_run(local.run_id), store) is None


def test_synchronous_cli_run_streams_the_pod_log_live(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    project = _project(tmp_path, docker_ready, '"echo first {name}; sleep 3; echo second"')
    proc = _cli(project, _config(tmp_path, registry))
    assert proc.stdout is not None
    # Read unbuffered, so communicate() below sees everything after this line.
    first = os.read(proc.stdout.fileno(), 100)  # arrives while the pod still sleeps
    assert first == b"first world\n"
    assert k8s.state.jobs and not any(
        c.get("type") == "Complete"
        for j in k8s.state.jobs.values()
        for c in j["status"].get("conditions") or []
    )
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert rest == "second\n", err  # printed once: live, not again at the end
    (run,) = get_store().search_runs(["0"])
    assert _artifact_log(run.info.run_id) == "first world\nsecond\n"


PYTHON_IMAGE = "mlproj-ci/python:3.11"  # Debian + python3 + mlflow-skinny, from .ci/docker-setup.sh


def test_code_in_the_pod_logs_into_the_run_through_kube_mlflow_tracking_uri(
    tmp_path: Path,
    k8s: KubernetesStandin,
    registry: Registry,
    docker_ready: str,
    mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inspect = subprocess.run(
        ["docker", "image", "inspect", PYTHON_IMAGE], capture_output=True, check=False
    )
    if inspect.returncode != 0:
        pytest.skip(f"{PYTHON_IMAGE} not built (.ci/docker-setup.sh with the Python image)")
    # The host talks to the server one way, the pod another: the pod gets the KUBE_ one.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    pod_uri = mlflow_server.url.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", pod_uri)
    project = _project(tmp_path, PYTHON_IMAGE, "python3 train.py {name}")
    (project / "train.py").write_text(
        "import os, sys\n"
        "import mlflow\n"
        "print('tracking', mlflow.get_tracking_uri(), flush=True)\n"
        "mlflow.log_param('who', sys.argv[1])\n"
        "mlflow.log_metric('loss', 0.25)\n"
    )
    submitted = mlproj.run(
        str(project),
        parameters={"name": "pod"},
        backend="kubernetes",
        backend_config=_config(tmp_path, registry),
    )
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.metrics == {"loss": 0.25}
    assert run.params == {"name": "pod", "who": "pod"}
    env = {
        e["name"]: e["value"]
        for e in k8s.state.created_jobs[-1]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MLFLOW_TRACKING_URI"] == pod_uri
    from mlflow.tracking import MlflowClient

    local = MlflowClient(mlflow_server.url).download_artifacts(
        submitted.run_id, "mlproj/output.log", str(tmp_path)
    )
    assert f"tracking {pod_uri}" in Path(local).read_text()


def test_a_failed_pod_is_failed_whatever_its_mlflow_client_recorded(
    tmp_path: Path,
    k8s: KubernetesStandin,
    registry: Registry,
    docker_ready: str,
    mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inspect = subprocess.run(
        ["docker", "image", "inspect", PYTHON_IMAGE], capture_output=True, check=False
    )
    if inspect.returncode != 0:
        pytest.skip(f"{PYTHON_IMAGE} not built (.ci/docker-setup.sh with the Python image)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv(
        "KUBE_MLFLOW_TRACKING_URI", mlflow_server.url.replace("127.0.0.1", "localhost")
    )
    project = _project(tmp_path, PYTHON_IMAGE, "python3 crash.py")
    # The project's own client logs into the run, then the script crashes: MLflow's exit hook
    # ends the run FINISHED before the pod fails.
    (project / "crash.py").write_text(
        "import mlflow\nmlflow.log_param('seen', 'yes')\nraise SystemExit(3)\n"
    )
    with pytest.raises(ExecutionException, match=r"Run \(ID '(\w+)'\) failed") as caught:
        mlproj.run(str(project), backend="kubernetes", backend_config=_config(tmp_path, registry))
    run_id = caught.value.message.split("'")[1]
    run = get_store().get_run(run_id)
    assert run.params["seen"] == "yes"  # the client did write into the run
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.outcome"] == "FAILED"
    assert run.tags["mlproj.error"].startswith("BackoffLimitExceeded")


def test_reap_records_the_end_of_a_job_whose_watcher_died(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    import signal

    project = _project(tmp_path, docker_ready, '"echo reaped {name}; exit 2"')
    submitted = _run_async(tmp_path, registry, project)
    pid = submitted.watcher_pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    k8s.wait_for(
        lambda s: any(
            c.get("type") == "Failed"
            for j in s.jobs.values()
            for c in j["status"].get("conditions") or []
        )
    )
    store = get_store()
    assert store.get_run(submitted.run_id).info.status == "RUNNING"  # nobody recorded it
    reaped = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "reap"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    assert reaped.returncode == 0, reaped.stderr
    assert f"Recorded FAILED: {submitted.run_id}" in reaped.stdout
    run = store.get_run(submitted.run_id)
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"].startswith("BackoffLimitExceeded")
    assert "reaped world" in _artifact_log(submitted.run_id)


def test_a_log_the_api_server_refuses_is_reported_and_the_run_still_ends(
    tmp_path: Path, k8s: KubernetesStandin, registry: Registry, docker_ready: str
) -> None:
    import signal

    from click.testing import CliRunner

    from mlproj.cli.main import cli

    project = _project(tmp_path, docker_ready, '"echo lost {name}; sleep 2"')
    submitted = _run_async(tmp_path, registry, project)
    pid = submitted.watcher_pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    k8s.wait_for(
        lambda s: any(
            c.get("type") == "Complete"
            for j in s.jobs.values()
            for c in j["status"].get("conditions") or []
        )
    )
    # RBAC now lets this user read Jobs but not pods: the status is known, the log is not.
    k8s.state.deny_pod_reads = True
    result = CliRunner().invoke(cli, ["runs", "reap"])
    assert result.exit_code == 0, result.output
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert "403" in run.tags["mlproj.log.error"]
    logs = CliRunner().invoke(cli, ["runs", "logs", submitted.run_id])
    assert logs.exit_code == 1
    assert "could not be kept when the run ended" in logs.output
    assert "403" in logs.output
