"""The handle on a run executing as a Kubernetes Job.

Status comes from the Job's conditions (``Complete`` / ``Failed``), always as a string; it
never goes back once terminal. When the run ends - however it ends - the pod log is kept as run
artifact ``mlproj/output.log`` and the terminal status is written to the tracking store once.
Cancel deletes the Job with foreground propagation, so its pods go with it.

:func:`reattach` rebuilds the handle from the run's tags, for the detached watcher of an
asynchronous run (:mod:`mlproj.backends.remote.watcher`), ``mlproj runs cancel`` and ``reap``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mlproj.backends.kubernetes.connection import api_client, api_error_message
from mlproj.backends.remote.handle import PollingSubmittedRun, ignore
from mlproj.errors import ExecutionException
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

JOB_TAG = "mlproj.kubernetes.job"
NAMESPACE_TAG = "mlproj.kubernetes.namespace"
CONTEXT_TAG = "mlproj.kubernetes.context"
CONTAINER_TAG = "mlproj.kubernetes.container"
POLL_TAG = "mlproj.kubernetes.poll_interval"
DELETE_TIMEOUT_SECONDS = 120.0
MAX_UNREACHABLE_POLLS = 30


class KubernetesSubmittedRun(PollingSubmittedRun):
    """A run executing as Job ``job_name`` in ``namespace``. Not thread-safe beyond the
    guarantee that the final status and log are recorded once."""

    log_tmp_prefix = "mlproj-k8s-log-"

    def __init__(
        self,
        run_id: str,
        job_name: str,
        namespace: str,
        client: ApiClient,
        store: TrackingStore,
        *,
        container: str | None = None,
        poll_interval: float = 5.0,
        log: Callable[[str], None] = ignore,
        echo_output: bool = False,
    ) -> None:
        super().__init__(run_id, store, poll_interval=poll_interval, log=log)
        self.job_name = job_name
        self.namespace = namespace
        self._client = client
        self._container = container
        self._echo_output = echo_output
        self._unreachable = 0  # consecutive failed status reads

    # -- status ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _following_output(self) -> Iterator[None]:
        streamer = None
        if self._echo_output and self._status not in TERMINAL_STATUSES:
            from mlproj.backends.kubernetes.logs import PodLogStreamer

            streamer = PodLogStreamer(self._client, self.namespace, self.job_name, self._container)
            streamer.start()
        try:
            yield
        finally:
            if streamer is not None:
                streamer.finish()
        if streamer is not None and not streamer.streamed_any and self._log_text:
            sys.stdout.write(self._log_text)  # the pods ended before they could be followed
            sys.stdout.flush()

    def _refresh(self) -> None:
        import urllib3

        from kubernetes.client import BatchV1Api
        from kubernetes.client.exceptions import ApiException

        try:
            job = BatchV1Api(self._client).read_namespaced_job(self.job_name, self.namespace)
            self._unreachable = 0
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # A network blip must not end the wait; a cluster gone for minutes does.
            self._unreachable += 1
            if self._unreachable >= MAX_UNREACHABLE_POLLS:
                raise ExecutionException(
                    f"The Kubernetes API server has been unreachable for "
                    f"{self._unreachable} status reads of Job {self.namespace}/{self.job_name}: "
                    f"{type(exc).__name__}"
                ) from exc
            return
        except ApiException as exc:
            if exc.status == 404:
                # Deleted behind our back (kubectl delete, TTL controller): the run was stopped.
                self._set_terminal(
                    RunStatus.KILLED,
                    f"Job {self.namespace}/{self.job_name} was deleted",
                    self._collect_log,
                )
                return
            raise ExecutionException(
                f"Reading Job {self.namespace}/{self.job_name} failed: {api_error_message(exc)}"
            ) from exc
        status, reason = job_status(job.status)
        if status in (RunStatus.SCHEDULED, self._status):
            return
        if status in TERMINAL_STATUSES:
            self._set_terminal(status, reason, self._collect_log)
        else:
            self._status = status

    # -- cancel ------------------------------------------------------------------------------
    def _stop(self) -> None:
        from kubernetes.client import BatchV1Api, V1DeleteOptions
        from kubernetes.client.exceptions import ApiException

        failure: ExecutionException | None = None
        log_text: str | None = None
        try:
            log_text = self._collect_log()  # before the pods are gone
        except ExecutionException as exc:
            failure = exc  # kept as the run's log error; the Job is deleted all the same
        batch = BatchV1Api(self._client)
        self._log(f"Deleting Job {self.namespace}/{self.job_name} and its pods")
        try:
            batch.delete_namespaced_job(
                self.job_name,
                self.namespace,
                body=V1DeleteOptions(propagation_policy="Foreground"),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise ExecutionException(
                    f"Deleting Job {self.namespace}/{self.job_name} failed: "
                    f"{api_error_message(exc)}"
                ) from exc
        self._wait_deleted()

        def read_log() -> str | None:
            if failure is not None:
                raise failure
            return log_text

        self._set_terminal(RunStatus.KILLED, "cancelled", read_log)

    def _wait_deleted(self) -> None:
        """Foreground deletion keeps the Job until its pods are gone; wait for that."""
        from kubernetes.client import BatchV1Api
        from kubernetes.client.exceptions import ApiException

        batch = BatchV1Api(self._client)
        deadline = time.monotonic() + DELETE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                batch.read_namespaced_job(self.job_name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise ExecutionException(
                    f"Reading Job {self.namespace}/{self.job_name} failed: {api_error_message(exc)}"
                ) from exc
            time.sleep(min(self._poll_interval, 1.0))
        self._log(
            f"Job {self.namespace}/{self.job_name} is still being deleted; not waiting longer"
        )

    # -- recording ---------------------------------------------------------------------------
    def _collect_log(self) -> str | None:
        """The log of every pod of the Job (retries included), oldest first; None if none.

        ExecutionException when the pods cannot be listed (auth, network): that is not a run
        without output, and is recorded as such."""
        import urllib3

        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException

        core = CoreV1Api(self._client)
        try:
            pods: list[Any] = core.list_namespaced_pod(
                self.namespace, label_selector=f"job-name={self.job_name}"
            ).items
        except ApiException as exc:
            raise ExecutionException(
                f"Could not list the pods of Job {self.namespace}/{self.job_name} to read their "
                f"logs: {api_error_message(exc)}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ExecutionException(
                f"Could not reach the Kubernetes API server to read the logs of Job "
                f"{self.namespace}/{self.job_name}: {type(exc).__name__}"
            ) from exc
        pods = sorted(pods, key=lambda p: (str(p.metadata.creation_timestamp), p.metadata.name))
        parts: list[str] = []
        for pod in pods:
            try:
                text = core.read_namespaced_pod_log(
                    pod.metadata.name, self.namespace, container=self._container
                )
            except ApiException as exc:
                text = f"(log of pod {pod.metadata.name} unavailable: {api_error_message(exc)})\n"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise ExecutionException(
                    f"Could not reach the Kubernetes API server to read the log of pod "
                    f"{pod.metadata.name}: {type(exc).__name__}"
                ) from exc
            if len(pods) > 1:
                parts.append(f"=== pod {pod.metadata.name} ===\n")
            parts.append(text if text.endswith("\n") or not text else text + "\n")
        return "".join(parts) if pods else None


def job_status(status: Any) -> tuple[str, str | None]:
    """(SCHEDULED | RUNNING | FINISHED | FAILED, reason) from a V1JobStatus.

    Only the ``Complete`` / ``Failed`` conditions end a run: ``failed`` / ``succeeded`` pod
    counters change while a Job with retries is still going.
    """
    if status is None:
        return RunStatus.SCHEDULED, None
    for condition in status.conditions or []:
        if condition.status != "True":
            continue
        if condition.type == "Failed":
            reason = ": ".join(p for p in (condition.reason, condition.message) if p)
            return RunStatus.FAILED, reason or "Job failed"
        if condition.type == "Complete":
            return RunStatus.FINISHED, None
    if status.start_time is not None:
        return RunStatus.RUNNING, None
    return RunStatus.SCHEDULED, None


# -- re-attaching ---------------------------------------------------------------------------
def reattach(run: Run, store: TrackingStore) -> KubernetesSubmittedRun | None:
    """The handle of a Kubernetes run, from the tags its submission wrote; None before the
    Job was created (tags ``mlproj.kubernetes.job`` / ``.namespace`` not written yet)."""
    tags = run.tags
    job, namespace = tags.get(JOB_TAG), tags.get(NAMESPACE_TAG)
    if not job or not namespace:
        return None
    poll = float(tags.get(POLL_TAG) or 5.0)
    return KubernetesSubmittedRun(
        run.run_id,
        job,
        namespace,
        api_client(tags.get(CONTEXT_TAG) or None),
        store,
        container=tags.get(CONTAINER_TAG) or None,
        poll_interval=poll,
    )
