"""Live output of a Job's pods on the console while a synchronous run is waited for.

One thread follows the log of each pod of the Job in turn (retries included), as
``kubectl logs -f`` would, copying bytes to stdout as they arrive. It is only for the user's
eyes: the complete log kept with the run is read separately when the run ends.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_STARTED_PHASES = ("Running", "Succeeded", "Failed")


class PodLogStreamer(threading.Thread):
    def __init__(
        self,
        client: ApiClient,
        namespace: str,
        job_name: str,
        container: str | None,
        *,
        out: BinaryIO | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(name=f"mlproj-logs-{job_name}", daemon=True)
        self._client = client
        self._namespace = namespace
        self._job_name = job_name
        self._container = container
        self._out = out if out is not None else sys.stdout.buffer
        self._poll_interval = poll_interval
        self._done: set[str] = set()
        self._finished = threading.Event()  # the run ended: stream what is left, then stop
        self.streamed_any = False

    def finish(self, timeout: float = 10.0) -> None:
        """Called once the run has ended: let the last pod's tail through, then stop."""
        self._finished.set()
        self.join(timeout)

    def run(self) -> None:
        while True:
            pending = self._pending_pods()
            for pod_name in pending:
                self._follow(pod_name)
            if self._finished.is_set() and not self._pending_pods():
                return
            if not pending:
                self._finished.wait(self._poll_interval)

    def _pending_pods(self) -> list[str]:
        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException

        try:
            pods: list[Any] = (
                CoreV1Api(self._client)
                .list_namespaced_pod(self._namespace, label_selector=f"job-name={self._job_name}")
                .items
            )
        except (ApiException, OSError):
            return []
        started = [
            p
            for p in pods
            if p.metadata.name not in self._done
            and p.status is not None
            and p.status.phase in _STARTED_PHASES
        ]
        started.sort(key=lambda p: (str(p.metadata.creation_timestamp), p.metadata.name))
        return [str(p.metadata.name) for p in started]

    def _follow(self, pod_name: str) -> None:
        import urllib3

        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException

        self._done.add(pod_name)
        try:
            response: Any = CoreV1Api(self._client).read_namespaced_pod_log(
                pod_name,
                self._namespace,
                container=self._container,
                follow=True,
                _preload_content=False,
            )
        except (ApiException, OSError):
            return
        # The connection is cut when the pod is deleted (cancel): nothing more to show then.
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            # read1 returns what has arrived; read/stream would wait for 4 KiB or the end.
            read = response.read1 if hasattr(response, "read1") else response.read
            while chunk := read(4096):
                self._out.write(chunk)
                self._out.flush()
                self.streamed_any = True
        response.release_conn()
