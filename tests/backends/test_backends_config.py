"""Backend configuration: parsed once into each backend's typed object, one rule for seconds,
unknown keys refused with the list of valid ones - the same on every built-in backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mlproj
from mlproj.backends.config import parse_seconds
from mlproj.backends.databricks.backend import DatabricksBackend
from mlproj.backends.databricks.backend_config import DatabricksConfig
from mlproj.backends.kubernetes.backend import KubernetesBackend
from mlproj.backends.kubernetes.backend_config import KubernetesConfig
from mlproj.backends.local import LocalBackend, LocalConfig
from mlproj.backends.registry import get_backend
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project, load_project
from mlproj.tracking import get_store

CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}
JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: x, namespace: ml}
spec:
  template:
    spec:
      containers: [{name: x, image: x}]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "MLproject").write_text(
        "name: cfg\ndocker_env: {image: busybox}\nentry_points:\n  main:\n    command: 'true'\n"
    )
    (tmp_path / "job.yaml").write_text(JOB)
    return load_project(tmp_path)


def _base(backend: str) -> dict[str, Any]:
    """The smallest valid config of each backend."""
    configs: dict[str, dict[str, Any]] = {
        "local": {},
        "kubernetes": {"kube-job-template-path": "job.yaml", "repository-uri": "r.example/p"},
        "databricks": {"new_cluster": CLUSTER},
        "slurm": {},
        "ray": {"address": "http://127.0.0.1:8265"},
    }
    return configs[backend]


BACKENDS = ("local", "kubernetes", "databricks", "slurm", "ray")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("value", "seconds"), [(60, 60), ("60", 60), (2.5, 3), (" 1.5 ", 2)])
def test_every_backend_reads_a_timeout_the_same_way(
    backend: str, value: object, seconds: int, project: Project
) -> None:
    config = get_backend(backend).parse_config({**_base(backend), "timeout": value}, project)
    # Local keeps fractions (it stops the process itself); the clusters take whole seconds,
    # rounded up so the limit is never shorter than asked.
    expected = float(str(value).strip()) if backend == "local" else seconds
    assert config.timeout == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [0, -1, "soon", True, "nan", "inf", [60], ""])
def test_every_backend_refuses_a_bad_timeout_in_the_same_words(
    backend: str, value: object, project: Project
) -> None:
    with pytest.raises(ExecutionException) as caught:
        get_backend(backend).parse_config({**_base(backend), "timeout": value}, project)
    assert caught.value.message == (
        f"backend_config: 'timeout' must be a positive number of seconds (e.g. 60 or \"60\"), "
        f"got {value!r}"
    )


@pytest.mark.parametrize(
    ("backend", "valid"),
    [
        ("local", "'timeout'"),
        (
            "kubernetes",
            "'kube-job-template-path', 'kube-context', 'repository-uri', 'poll-interval', "
            "'timeout'",
        ),
        ("databricks", "'new_cluster', 'libraries', 'poll-interval', 'timeout'"),
        (
            "slurm",
            "'partition', 'account', 'qos', 'time', 'nodes', 'mem', 'gpus', 'gres', "
            "'constraint', 'ntasks', 'cpus_per_task', 'exclusive', 'modules', 'setup', "
            "'sbatch_args', 'log_dir', 'env_build', 'mlproj_python', 'poll-interval', 'timeout'",
        ),
        (
            "ray",
            "'address', 'runtime_env', 'entrypoint_num_cpus', 'entrypoint_num_gpus', "
            "'entrypoint_memory', 'entrypoint_resources', 'excludes', 'metadata', "
            "'poll-interval', 'timeout'",
        ),
    ],
)
def test_unknown_keys_are_refused_with_the_valid_ones(
    backend: str, valid: str, project: Project
) -> None:
    with pytest.raises(ExecutionException) as caught:
        get_backend(backend).parse_config({**_base(backend), "timeuot": 5}, project)
    assert caught.value.message.startswith(
        f"backend_config: unknown key(s) 'timeuot' for the {backend} backend; valid keys: {valid}"
    )


def test_a_misspelled_cluster_field_is_refused_not_dropped(project: Project) -> None:
    # databricks-sdk drops fields it does not know: the cluster would start without workers.
    with pytest.raises(ExecutionException, match="unknown key\\(s\\) 'num_worker' for the "):
        DatabricksBackend().parse_config({**CLUSTER, "num_worker": 2}, project)
    with pytest.raises(ExecutionException, match="'num_worker'.*new_cluster is a new-cluster"):
        DatabricksBackend().parse_config({"new_cluster": {**CLUSTER, "num_worker": 2}}, project)
    flat = DatabricksBackend().parse_config(
        {**CLUSTER, "libraries": [{"pypi": {"package": "x"}}], "timeout": "30"}, project
    )
    assert flat == DatabricksConfig(
        new_cluster=CLUSTER, libraries=[{"pypi": {"package": "x"}}], timeout=30
    )


def test_each_backend_gets_its_own_typed_config(project: Project) -> None:
    assert LocalBackend().parse_config({"timeout": "5"}, project) == LocalConfig(timeout=5.0)
    kube = KubernetesBackend().parse_config(
        {**_base("kubernetes"), "poll-interval": "0.5"}, project
    )
    assert isinstance(kube, KubernetesConfig)
    assert kube.template_path == project.directory / "job.yaml"
    assert kube.poll_interval == 0.5
    assert isinstance(
        DatabricksBackend().parse_config(_base("databricks"), project), DatabricksConfig
    )


def test_seconds_default_and_message_name_the_key() -> None:
    assert parse_seconds({}, "poll-interval", 5.0) == 5.0
    assert parse_seconds({"poll-interval": None}, "poll-interval") is None
    with pytest.raises(ExecutionException, match="^backend_config: 'poll-interval' must be"):
        parse_seconds({"poll-interval": "fast"}, "poll-interval")


def test_a_bad_local_config_is_refused_before_a_run_is_opened(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: x\nentry_points:\n  main:\n    command: 'true'\n")
    with pytest.raises(ExecutionException, match="unknown key\\(s\\) 'timout' for the local"):
        mlproj.run(str(tmp_path), env_manager="local", backend_config={"timout": 1})
    done = mlproj.run(str(tmp_path), env_manager="local", backend_config={"timeout": "30"})
    assert done.get_status() == "FINISHED"
    assert len(get_store().search_runs(["0"])) == 1  # only the good one was opened
