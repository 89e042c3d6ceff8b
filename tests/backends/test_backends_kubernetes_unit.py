"""The Kubernetes backend's pure parts: config checks, Job rendering, status mapping."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlproj.backends.kubernetes.backend import KubernetesBackend
from mlproj.backends.kubernetes.backend_config import parse_config
from mlproj.backends.kubernetes.job import (
    container_command,
    job_env,
    job_name,
    job_volumes,
    render_job,
)
from mlproj.backends.kubernetes.run import job_status
from mlproj.errors import ExecutionException
from mlproj.spec.project import DockerEnv, Project, load_project

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: "{replaced}"
  namespace: ml
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: "{replaced}"
          image: "{replaced}"
          env:
            - {name: DUMMY, value: kept}
            - {name: MLFLOW_EXPERIMENT_ID, value: replaced}
"""


def _project(
    tmp_path: Path, docker: str | None = "image: mlproj-ci/busybox:1", name: str = "demo"
) -> Project:
    lines = [f"name: {name}"] if name else []
    if docker is not None:
        lines += ["docker_env:", *(f"  {line}" for line in docker.splitlines())]
    lines += ["entry_points:", "  main:", "    command: echo hi"]
    (tmp_path / "MLproject").write_text("\n".join(lines) + "\n")
    return load_project(tmp_path)


def _config(tmp_path: Path, **overrides: object) -> dict[str, object]:
    template = tmp_path / "job.yaml"
    if not template.exists():
        template.write_text(TEMPLATE)
    config: dict[str, object] = {
        "kube-job-template-path": str(template),
        "repository-uri": "127.0.0.1:5000/demo",
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def test_command_without_shell_syntax_is_split_into_plain_arguments() -> None:
    # MLflow re-quotes tokens, so the program received "'foo bar'" with the quotes.
    assert container_command("python train.py --comment 'foo bar' --n 3") == [
        "python",
        "train.py",
        "--comment",
        "foo bar",
        "--n",
        "3",
    ]


def test_command_with_shell_syntax_runs_under_sh() -> None:
    command = "python a.py && echo $HOME | tee out.txt"
    assert container_command(command) == ["/bin/sh", "-c", command]


def test_unbalanced_quotes_are_a_clear_error() -> None:
    with pytest.raises(ExecutionException, match="cannot be parsed"):
        container_command("echo 'oops")


def test_job_name_is_a_valid_dns_label_that_names_the_run() -> None:
    name = job_name("My_Project.With Spaces" * 5, "ABCDEF0123456789abcdef0123456789")
    assert len(name) <= 63
    assert name.endswith("-abcdef012345")
    assert all(c.isalnum() and c.islower() or c.isdigit() or c == "-" for c in name)
    assert not name.startswith("-")


def test_env_has_run_variables_kube_override_and_docker_env_items() -> None:
    env = job_env(
        run_id="r1",
        tracking_uri="file:///tmp/mlruns",
        experiment_id="7",
        docker_env=DockerEnv(image="x", environment=("FROM_HOST", ("SET", "v"))),
        host_env={"FROM_HOST": "h", "KUBE_MLFLOW_TRACKING_URI": "http://mlflow:5000"},
    )
    assert env == [
        {"name": "MLFLOW_RUN_ID", "value": "r1"},
        {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
        {"name": "MLFLOW_EXPERIMENT_ID", "value": "7"},
        {"name": "FROM_HOST", "value": "h"},
        {"name": "SET", "value": "v"},
    ]


def test_docker_env_volumes_become_host_paths_and_claims() -> None:
    volumes, mounts = job_volumes(["/data/in:/in:ro", "cache:/cache"])
    assert volumes == [
        {"name": "mlproj-volume-0", "hostPath": {"path": "/data/in"}},
        {"name": "mlproj-volume-1", "persistentVolumeClaim": {"claimName": "cache"}},
    ]
    assert mounts == [
        {"name": "mlproj-volume-0", "mountPath": "/in", "readOnly": True},
        {"name": "mlproj-volume-1", "mountPath": "/cache", "readOnly": False},
    ]
    with pytest.raises(ExecutionException, match="docker_env.volumes: 'nonsense'"):
        job_volumes(["nonsense"])
    with pytest.raises(ExecutionException, match="mode 'z'"):
        job_volumes(["/a:/b:z"])


def test_render_keeps_template_env_first_and_replaces_duplicates(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path))
    job = render_job(
        config.job_template(),
        name="demo-abc",
        container="demo",
        image="reg/demo@sha256:00",
        command=["echo", "hi"],
        env=[
            {"name": "MLFLOW_RUN_ID", "value": "r"},
            {"name": "MLFLOW_EXPERIMENT_ID", "value": "3"},
        ],
        volumes=["/x:/y"],
        run_id="r",
    )
    assert job["metadata"]["name"] == "demo-abc"
    assert job["metadata"]["namespace"] == "ml"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg/demo@sha256:00"
    assert container["command"] == ["echo", "hi"]
    assert [e["name"] for e in container["env"]] == [
        "DUMMY",
        "MLFLOW_RUN_ID",
        "MLFLOW_EXPERIMENT_ID",
    ]
    assert container["env"][2]["value"] == "3"
    assert container["volumeMounts"][0]["mountPath"] == "/y"
    assert job["spec"]["template"]["metadata"]["labels"]["mlproj-run-id"] == "r"
    # The parsed template itself is untouched, so it can be reused.
    assert config.template["metadata"]["name"] == "{replaced}"


def _cond(type_: str, status: str = "True") -> SimpleNamespace:
    return SimpleNamespace(type=type_, status=status, reason="BackoffLimitExceeded", message="m")


def test_status_follows_conditions_not_counters() -> None:
    status = SimpleNamespace(start_time=None, conditions=None, failed=None, succeeded=None)
    assert job_status(status) == ("SCHEDULED", None)
    status.start_time = "2026-01-01T00:00:00Z"
    assert job_status(status) == ("RUNNING", None)
    status.failed, status.succeeded = 1, 1  # retries in progress: still running
    assert job_status(status) == ("RUNNING", None)
    status.conditions = [_cond("Complete", "False"), _cond("SuccessCriteriaMet")]
    assert job_status(status) == ("RUNNING", None)
    status.conditions = [_cond("Complete")]
    assert job_status(status) == ("FINISHED", None)
    status.conditions = [_cond("Failed")]
    assert job_status(status) == ("FAILED", "BackoffLimitExceeded: m")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kube-job-template-path": None}, "'kube-job-template-path' must be set"),
        ({"repository-uri": None}, "'repository-uri' must be set"),
        ({"kube-job-template-path": "missing.yaml"}, "'missing.yaml': no such file"),
        ({"poll-interval": 0}, "'poll-interval' must be a positive number"),
        ({"kube-context": 3}, "'kube-context' must be a string"),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ExecutionException, match=message):
        parse_config(_config(tmp_path, **overrides))


def test_empty_config_says_what_to_give() -> None:
    with pytest.raises(ExecutionException, match="needs a backend config"):
        parse_config({})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n", "expected a Job manifest"),
        ("kind: CronJob\nmetadata: {namespace: x}\n", "only batch/v1 Job"),
        ("kind: Job\nmetadata: {name: x}\n", "metadata.namespace is missing"),
        ("kind: Job\nmetadata: {namespace: x}\nspec: {}\n", "containers must list"),
    ],
)
def test_template_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "job.yaml").write_text(text)
    with pytest.raises(ExecutionException, match=message):
        parse_config(_config(tmp_path))


def test_relative_template_path_resolves_against_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "job.yaml").write_text(TEMPLATE)
    monkeypatch.chdir(tmp_path)
    raw = {"kube-job-template-path": "job.yaml", "repository-uri": "r/demo"}
    config = parse_config(raw, project)
    assert config.template_path == project / "job.yaml"
    assert config.namespace == "ml"


def test_validate_requires_a_docker_project_with_a_name(tmp_path: Path) -> None:
    backend = KubernetesBackend()
    config = backend.parse_config(_config(tmp_path), _project(tmp_path))
    with pytest.raises(ExecutionException, match="add a docker_env"):
        backend.validate(_project(tmp_path, docker=None), config)
    with pytest.raises(ExecutionException, match="'name' must be set"):
        backend.validate(_project(tmp_path, name=""), config)


def test_validate_checks_host_variables_before_anything_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPROJ_TEST_ABSENT", raising=False)
    project = _project(tmp_path, docker="image: x\nenvironment: [MLPROJ_TEST_ABSENT]")
    with pytest.raises(ExecutionException, match="MLPROJ_TEST_ABSENT is not set on this machine"):
        KubernetesBackend().validate(project, parse_config(_config(tmp_path)))


def test_validate_checks_the_kube_context_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "prod",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    project = _project(tmp_path)
    KubernetesBackend().validate(
        project, parse_config(_config(tmp_path, **{"kube-context": "prod"}))
    )
    with pytest.raises(
        ExecutionException, match=r"'staging' is not in the kubeconfig \(contexts: 'prod'\)"
    ):
        KubernetesBackend().validate(
            project, parse_config(_config(tmp_path, **{"kube-context": "staging"}))
        )


def test_timeout_becomes_active_deadline_seconds(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, timeout=1.5))
    assert config.timeout == 2
    job = render_job(
        config.job_template(),
        name="n",
        container="c",
        image="i",
        command=["true"],
        env=[],
        run_id="r",
        timeout=config.timeout,
    )
    assert job["spec"]["activeDeadlineSeconds"] == 2
    with pytest.raises(ExecutionException, match="'timeout' must be a positive number"):
        parse_config(_config(tmp_path, timeout="soon"))


def test_status_reads_survive_blips_but_not_a_cluster_that_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from mlproj.backends.kubernetes import run as kubernetes_run
    from mlproj.backends.kubernetes.connection import api_client
    from mlproj.backends.kubernetes.run import KubernetesSubmittedRun

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kubernetes_run, "MAX_UNREACHABLE_POLLS", 3)
    client = api_client(None)
    client.configuration.retries = False
    run = KubernetesSubmittedRun("r", "job", "ns", client, store=None)  # type: ignore[arg-type]
    assert run.get_status() == "SCHEDULED"  # first failures: keep the last known status
    assert run.get_status() == "SCHEDULED"
    with pytest.raises(ExecutionException, match="unreachable for 3 status reads of Job ns/job"):
        run.get_status()


def test_render_copes_with_empty_template_sections(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "kind: Job\nmetadata: {namespace: ml, labels: null}\n"
        "spec:\n  template:\n    metadata: null\n"
        "    spec:\n      containers: [{name: x, env: null, volumeMounts: null}]\n"
        "      volumes: null\n"
    )
    job = render_job(
        parse_config(_config(tmp_path)).job_template(),
        name="n",
        container="c",
        image="i",
        command=["true"],
        env=[{"name": "A", "value": "1"}],
        volumes=["/x:/y:ro"],
        run_id="r",
    )
    assert job["metadata"]["labels"] == {"mlproj-run-id": "r"}
    assert job["spec"]["template"]["metadata"]["labels"] == {"mlproj-run-id": "r"}
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert container["volumeMounts"] == [
        {"name": "mlproj-volume-0", "mountPath": "/y", "readOnly": True}
    ]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_a_local_sqlite_store_is_refused_before_a_run_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlproj.backends.registry import get_backend

    monkeypatch.delenv("KUBE_MLFLOW_TRACKING_URI", raising=False)
    backend = get_backend("kubernetes")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ExecutionException, match="pods cannot write to") as info:
        backend.validate_tracking_uri(uri)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "mlflow.db").exists()  # nothing was opened
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", "http://mlflow.cluster.local")
    backend.validate_tracking_uri(uri)  # the pods get a server: fine
