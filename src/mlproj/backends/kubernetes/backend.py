"""The ``kubernetes`` backend: run the project's docker image as a Kubernetes Job.

Steps of a submission, in order: build the image with the project code (reused when the code
is unchanged) -> push it to ``repository-uri`` -> fill the Job template (name, image pinned by
digest, command, MLflow variables, docker_env environment and volumes) -> create the Job ->
hand back a :class:`KubernetesSubmittedRun`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from mlproj.backends.base import Backend, SubmitRequest
from mlproj.backends.kubernetes.backend_config import (
    KubernetesConfig,
    check_kube_context,
    check_project,
    parse_config,
)
from mlproj.backends.kubernetes.connection import api_client, api_error_message, import_kubernetes
from mlproj.backends.kubernetes.image import build_and_push
from mlproj.backends.kubernetes.job import (
    container_command,
    container_name,
    job_env,
    job_name,
    render_job,
)
from mlproj.backends.kubernetes.run import (
    CONTAINER_TAG,
    CONTEXT_TAG,
    JOB_TAG,
    NAMESPACE_TAG,
    POLL_TAG,
    KubernetesSubmittedRun,
    reattach,
)
from mlproj.backends.remote.watcher import start_watching
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project
from mlproj.tags import MLFLOW_BACKEND, MLFLOW_DOCKER_IMAGE_ID, MLFLOW_DOCKER_IMAGE_URI, MLFLOW_ENV
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run


class KubernetesBackend(Backend[KubernetesConfig]):
    name: ClassVar[str] = "kubernetes"

    def parse_config(self, raw: Mapping[str, Any], project: Project) -> KubernetesConfig:
        return parse_config(raw, project.directory)

    def validate(self, project: Project, config: KubernetesConfig) -> None:
        import_kubernetes()
        check_project(project)
        check_kube_context(config.context)

    def validate_tracking_uri(self, tracking_uri: str) -> None:
        """A SQLite database on this machine cannot be written from a pod (and a copy would
        lose the run): refused before any run opens, unless the pods get another URI."""
        if tracking_uri.startswith("sqlite:") and not os.environ.get("KUBE_MLFLOW_TRACKING_URI"):
            raise ExecutionException(
                f"Tracking URI {tracking_uri} is a SQLite database on this machine, which pods "
                "cannot write to; use an MLflow tracking server (--tracking-uri "
                "http://...), or set KUBE_MLFLOW_TRACKING_URI to one the cluster can reach"
            )

    def reattach(self, run: Run, store: TrackingStore) -> KubernetesSubmittedRun | None:
        return reattach(run, store)

    def submit(self, request: SubmitRequest[KubernetesConfig]) -> KubernetesSubmittedRun:
        config, project = request.backend_config, request.project
        check_project(project)
        assert project.docker_env is not None and project.name  # checked above
        store, run_id = request.store, request.run_id
        store.set_tags(run_id, {MLFLOW_ENV: "docker", MLFLOW_BACKEND: "kubernetes"})
        if request.tracking_uri.startswith("file:") and not os.environ.get(
            "KUBE_MLFLOW_TRACKING_URI"
        ):
            request.log(
                f"Warning: the pod gets tracking URI {request.tracking_uri}, a folder on this "
                "machine; set KUBE_MLFLOW_TRACKING_URI to a server the cluster can reach"
            )

        if request.docker_args:
            request.log(
                "Warning: docker_args do not apply to Kubernetes pods and are ignored; set "
                "resources and options in the Job template"
            )
        image = build_and_push(
            project,
            config.repository,
            auth=request.docker_auth,
            log=request.log,
            tracking_uri=request.tracking_uri,
        )
        store.set_tags(
            run_id, {MLFLOW_DOCKER_IMAGE_URI: image.uri, MLFLOW_DOCKER_IMAGE_ID: image.digest}
        )

        name = job_name(project.name, run_id)
        container = container_name(project.name)
        manifest = render_job(
            config.job_template(),
            name=name,
            container=container,
            image=image.pinned,
            command=container_command(request.command),
            env=job_env(
                run_id=run_id,
                tracking_uri=request.tracking_uri,
                experiment_id=request.experiment_id,
                docker_env=project.docker_env,
                host_env=os.environ,
            ),
            volumes=project.docker_env.volumes,
            run_id=run_id,
            timeout=config.timeout,
        )
        client = api_client(config.context)
        _create_job(client, config.namespace, manifest)
        store.set_tags(
            run_id,
            {
                JOB_TAG: name,
                NAMESPACE_TAG: config.namespace,
                CONTEXT_TAG: config.context or "",
                CONTAINER_TAG: container,
                POLL_TAG: str(config.poll_interval),
            },
        )
        request.log(f"Created Job {config.namespace}/{name} running {image.pinned}")
        run = KubernetesSubmittedRun(
            run_id,
            name,
            config.namespace,
            client,
            store,
            container=container,
            poll_interval=config.poll_interval,
            log=request.log,
            echo_output=request.synchronous,
        )
        run.watcher_pid = start_watching(
            store, run_id, synchronous=request.synchronous, backend=self.name
        )
        return run


def _create_job(client: Any, namespace: str, manifest: dict[str, Any]) -> None:
    import urllib3

    from kubernetes.client import BatchV1Api
    from kubernetes.client.exceptions import ApiException

    try:
        body: Any = manifest  # the client accepts plain dicts
        BatchV1Api(client).create_namespaced_job(namespace, body)
    except ApiException as exc:
        raise ExecutionException(
            f"Creating Job {manifest['metadata']['name']} in namespace {namespace!r} failed: "
            f"{api_error_message(exc)}"
        ) from exc
    except (OSError, urllib3.exceptions.HTTPError) as exc:  # refused, DNS, TLS
        raise ExecutionException(
            f"Could not reach the Kubernetes API server to create the Job: {exc}"
        ) from exc
