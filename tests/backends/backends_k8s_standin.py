"""A stateful Kubernetes API stand-in on loopback, plus a "kubelet" that runs Jobs in Docker.

What it replaces and why: no Kubernetes API server (or kind/minikube) can run on this machine,
so this small HTTP server implements just the endpoints the official ``kubernetes`` client calls
for the mlproj kubernetes backend - batch/v1 Jobs (create / read / delete with
``propagationPolicy``) and core/v1 pods (list by ``job-name`` label, read log) - with bearer
token auth, namespaces and, on demand, RBAC refusing pod reads (403). Everything else answers 404. The kubelet thread plays the node and
the Job controller: for each new Job it creates a pod, runs the Job's first container in the
real local Docker daemon (the image pulled by digest from the registry, with the Job's command,
env and hostPath volumes), and writes pod phases and the Job's status and conditions back
(``Complete`` / ``Failed`` after ``backoffLimit`` retries). Foreground deletion removes the pods
(and their containers) before the Job disappears, as the garbage collector does.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "standin-token"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


class ClusterState:
    """Jobs and pods by namespace; one lock guards all of it."""

    def __init__(self, namespaces: tuple[str, ...] = ("default", "ml")) -> None:
        self.lock = threading.RLock()
        self.namespaces = set(namespaces)
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.containers: dict[tuple[str, str], str] = {}  # pod -> docker container name
        self.requests: list[tuple[str, str]] = []  # (method, path) for assertions
        self.created_jobs: list[dict[str, Any]] = []  # bodies as received
        self.deny_pod_reads = False  # RBAC without pod access: pods answer 403 Forbidden

    def pods_of(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return [
            p
            for (ns, _), p in self.pods.items()
            if ns == namespace and p["metadata"]["labels"].get("job-name") == job
        ]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return False
        return True

    def _route(self, method: str) -> None:
        state = self.server.state
        url = urlparse(self.path)
        with state.lock:
            state.requests.append((method, url.path))
        if not self._authorised():
            return
        query = parse_qs(url.query)
        m = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?(/status)?", url.path)
        if m:
            self._jobs(method, m.group(1), m.group(2))
            return
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?", url.path)
        if m and state.deny_pod_reads:
            message = f'pods is forbidden: User "standin" cannot list resource "pods" in "{m[1]}"'
            self._send(403, _status(403, "Forbidden", message))
            return
        if m and method == "GET":
            self._pods(m.group(1), m.group(2), bool(m.group(3)), query)
            return
        self._send(404, _status(404, "NotFound", f"the server could not find {url.path}"))

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # -- resources -----------------------------------------------------------------------------
    def _jobs(self, method: str, namespace: str, name: str | None) -> None:
        state = self.server.state
        if namespace not in state.namespaces:
            self._send(404, _status(404, "NotFound", f'namespaces "{namespace}" not found'))
            return
        with state.lock:
            if method == "POST" and name is None:
                body = self._body()
                state.created_jobs.append(copy.deepcopy(body))
                job_name = body.get("metadata", {}).get("name")
                if not job_name:
                    self._send(422, _status(422, "Invalid", "metadata.name: Required value"))
                    return
                if (namespace, job_name) in state.jobs:
                    msg = f'jobs.batch "{job_name}" already exists'
                    self._send(409, _status(409, "AlreadyExists", msg))
                    return
                job = copy.deepcopy(body)
                job.setdefault("apiVersion", "batch/v1")
                job.setdefault("kind", "Job")
                meta = job["metadata"]
                meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
                job["status"] = {}
                state.jobs[(namespace, job_name)] = job
                self._send(201, job)
                return
            job = state.jobs.get((namespace, name or ""))
            if job is None:
                self._send(404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
                return
            if method == "GET":
                self._send(200, job)
                return
            if method == "DELETE":
                options = self._body()
                policy = options.get("propagationPolicy") or "Background"
                if policy == "Foreground":
                    # The garbage collector (the kubelet thread) removes pods, then the Job.
                    job["metadata"]["deletionTimestamp"] = _now()
                    job["metadata"]["finalizers"] = ["foregroundDeletion"]
                    self._send(200, job)
                    return
                del state.jobs[(namespace, job["metadata"]["name"])]
                if policy == "Background":
                    for pod in state.pods_of(namespace, job["metadata"]["name"]):
                        pod["metadata"]["deletionTimestamp"] = _now()
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                return
        self._send(405, _status(405, "MethodNotAllowed", method))

    def _pods(
        self, namespace: str, name: str | None, log: bool, query: dict[str, list[str]]
    ) -> None:
        state = self.server.state
        with state.lock:
            if name is None:
                selector = (query.get("labelSelector") or [""])[0]
                wanted = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
                items = [
                    p
                    for (ns, _), p in state.pods.items()
                    if ns == namespace
                    and all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                ]
                self._send(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
                return
            pod = state.pods.get((namespace, name))
            container = state.containers.get((namespace, name))
        if pod is None:
            self._send(404, _status(404, "NotFound", f'pods "{name}" not found'))
            return
        if not log:
            self._send(200, pod)
            return
        if container is None:
            self._send(400, _status(400, "BadRequest", f"container in pod {name} is waiting"))
            return
        if (query.get("follow") or [""])[0] == "true":
            self._follow_log(container)
            return
        out = subprocess.run(
            ["docker", "logs", container], capture_output=True, text=True, check=False
        )
        self._send(200, out.stdout + out.stderr, "text/plain")

    def _follow_log(self, container: str) -> None:
        """``follow=true``: stream until the container exits or is removed (HTTP/1.0: the body
        ends when the connection closes)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        proc = subprocess.Popen(
            ["docker", "logs", "-f", container], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(4096):
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            proc.kill()
        finally:
            proc.stdout.close()
            proc.wait()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ClusterState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class Kubelet(threading.Thread):
    """Runs each Job's pod as a Docker container and reports back; also the garbage collector."""

    def __init__(self, state: ClusterState, interval: float = 0.2) -> None:
        super().__init__(name="standin-kubelet", daemon=True)
        self.state = state
        self.interval = interval
        self.stopped = threading.Event()
        self.docker_runs: list[list[str]] = []  # argv of every `docker run`, for assertions
        self.started: dict[tuple[str, str], float] = {}  # Job -> monotonic start time

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # keep the node alive; the test sees the symptom
                print(f"standin kubelet: {type(exc).__name__}: {exc}")

    def tick(self) -> None:
        state = self.state
        with state.lock:
            jobs = list(state.jobs.items())
        for (namespace, name), job in jobs:
            if job["metadata"].get("deletionTimestamp"):
                self._collect(namespace, name)
                continue
            if _terminal(job):
                continue
            if self._past_deadline(namespace, job):
                continue
            pods = state.pods_of(namespace, name)
            running = [p for p in pods if p["status"]["phase"] in ("Pending", "Running")]
            if running:
                for pod in running:
                    self._poll_pod(namespace, job, pod)
            else:
                self._start_pod(namespace, job)
        # Background deletion: pods marked for deletion go away.
        with state.lock:
            doomed = [k for k, p in state.pods.items() if p["metadata"].get("deletionTimestamp")]
        for key in doomed:
            self._delete_pod(*key)

    def _past_deadline(self, namespace: str, job: dict[str, Any]) -> bool:
        """activeDeadlineSeconds: stop the running pods (logs kept) and fail the Job."""
        deadline = job["spec"].get("activeDeadlineSeconds")
        started = self.started.get((namespace, job["metadata"]["name"]))
        if deadline is None or started is None or time.monotonic() - started <= deadline:
            return False
        for pod in self.state.pods_of(namespace, job["metadata"]["name"]):
            docker_name = self.state.containers.get((namespace, pod["metadata"]["name"]))
            if docker_name and pod["status"]["phase"] in ("Pending", "Running"):
                subprocess.run(["docker", "kill", docker_name], capture_output=True, check=False)
                pod["status"]["phase"] = "Failed"
        with self.state.lock:
            job["status"]["active"] = 0
            job["status"]["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                    "lastTransitionTime": _now(),
                }
            ]
        return True

    def _start_pod(self, namespace: str, job: dict[str, Any]) -> None:
        job_name = job["metadata"]["name"]
        pod_template = job["spec"]["template"]
        pod_name = f"{job_name}-{secrets.token_hex(3)}"
        labels = {**(pod_template.get("metadata", {}).get("labels") or {}), "job-name": job_name}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "labels": labels,
                "creationTimestamp": _now(),
                "uid": str(uuid.uuid4()),
            },
            "spec": copy.deepcopy(pod_template["spec"]),
            "status": {"phase": "Pending"},
        }
        with self.state.lock:
            self.state.pods[(namespace, pod_name)] = pod
            self.started.setdefault((namespace, job_name), time.monotonic())
            job["status"].setdefault("startTime", _now())
            job["status"]["active"] = 1
        container = pod["spec"]["containers"][0]
        docker_name = f"standin-{pod_name}"
        argv = ["docker", "run", "-d", "--name", docker_name, "--network", "host"]
        for volume in pod["spec"].get("volumes") or []:
            mount = next(
                m for m in container.get("volumeMounts") or [] if m["name"] == volume["name"]
            )
            if "hostPath" in volume:
                mode = ":ro" if mount.get("readOnly") else ""
                argv += ["-v", f"{volume['hostPath']['path']}:{mount['mountPath']}{mode}"]
        for env in container.get("env") or []:
            argv += ["-e", f"{env['name']}={env.get('value', '')}"]
        command = container.get("command") or []
        if command:
            argv += ["--entrypoint", command[0]]
        argv += [container["image"], *command[1:], *(container.get("args") or [])]
        self.docker_runs.append(argv)
        started = subprocess.run(argv, capture_output=True, text=True, check=False)
        with self.state.lock:
            if started.returncode != 0:
                pod["status"] = {
                    "phase": "Failed",
                    "reason": "ErrImagePull",
                    "message": started.stderr.strip(),
                }
                self._pod_ended(namespace, job, succeeded=False)
                return
            self.state.containers[(namespace, pod_name)] = docker_name
            pod["status"] = {"phase": "Running", "startTime": _now()}

    def _poll_pod(self, namespace: str, job: dict[str, Any], pod: dict[str, Any]) -> None:
        docker_name = self.state.containers.get((namespace, pod["metadata"]["name"]))
        if docker_name is None:
            return
        out = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", docker_name],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            return
        running, code = out.stdout.split()
        if running == "true":
            return
        with self.state.lock:
            pod["status"]["phase"] = "Succeeded" if code == "0" else "Failed"
            container = pod["spec"]["containers"][0]
            pod["status"]["containerStatuses"] = [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": container["image"],
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": int(code)}},
                }
            ]
            self._pod_ended(namespace, job, succeeded=code == "0")

    def _pod_ended(self, namespace: str, job: dict[str, Any], *, succeeded: bool) -> None:
        status = job["status"]
        status["active"] = 0
        if succeeded:
            status["succeeded"] = status.get("succeeded", 0) + 1
            status["completionTime"] = _now()
            status["conditions"] = [
                {"type": "Complete", "status": "True", "lastTransitionTime": _now()}
            ]
            return
        status["failed"] = status.get("failed", 0) + 1
        backoff_limit = job["spec"].get("backoffLimit", 6)
        if status["failed"] > backoff_limit:
            status["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": _now(),
                }
            ]

    def _collect(self, namespace: str, job_name: str) -> None:
        for pod in self.state.pods_of(namespace, job_name):
            self._delete_pod(namespace, pod["metadata"]["name"])
        with self.state.lock:
            self.state.jobs.pop((namespace, job_name), None)

    def _delete_pod(self, namespace: str, pod_name: str) -> None:
        with self.state.lock:
            docker_name = self.state.containers.pop((namespace, pod_name), None)
            self.state.pods.pop((namespace, pod_name), None)
        if docker_name:
            subprocess.run(["docker", "rm", "-f", docker_name], capture_output=True, check=False)

    def cleanup(self) -> None:
        with self.state.lock:
            names = list(self.state.containers.values())
            self.state.containers.clear()
        for docker_name in names:
            subprocess.run(["docker", "rm", "-f", docker_name], capture_output=True, check=False)


def _terminal(job: dict[str, Any]) -> bool:
    return any(
        c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
        for c in job.get("status", {}).get("conditions") or []
    )


class KubernetesStandin:
    """The API server and kubelet together; ``kubeconfig()`` points the real client at them."""

    def __init__(self) -> None:
        self.state = ClusterState()
        self.server = _Server(self.state)
        self.kubelet = Kubelet(self.state)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubernetesStandin:
        self._thread.start()
        self.kubelet.start()
        return self

    def stop(self) -> None:
        self.kubelet.stopped.set()
        self.kubelet.join(timeout=5)
        self.kubelet.cleanup()
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, context: str = "standin") -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                "users": [{"name": "standin", "user": {"token": TOKEN}}],
                "contexts": [
                    {"name": context, "context": {"cluster": "standin", "user": "standin"}},
                    {"name": "other", "context": {"cluster": "standin", "user": "standin"}},
                ],
                "current-context": context,
            }
        )

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.state.lock:
                if predicate(self.state):
                    return
            time.sleep(0.1)
        raise AssertionError("stand-in never reached the expected state")
