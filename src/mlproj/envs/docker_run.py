"""The ``docker run`` argv of a project run: mounts, environment, network, docker_args.

Everything is an argv list. Container environment values are handed to the ``docker`` client
through its own environment and named with ``-e NAME``, so values with spaces, quotes, ``;``
or newlines arrive intact and never show up in ``ps`` output.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlproj.docker.cli import DockerCli
from mlproj.docker.images import CODE_DIR
from mlproj.errors import ExecutionException
from mlproj.fsutil import write_json_atomic
from mlproj.home import home_subdir
from mlproj.locations import local_store_root

_OPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Variables the docker client itself reads: passing them by name would redirect or break the
# client, so these go inline (-e NAME=value) instead.
_CLIENT_VARS = frozenset(
    {"PATH", "HOME", "SSH_AUTH_SOCK", "TMPDIR", "GODEBUG", "GOMAXPROCS", "GOGC"}
    | {f"{name}_PROXY" for name in ("HTTP", "HTTPS", "NO", "ALL")}
    | {f"{name}_proxy" for name in ("http", "https", "no", "all")}
)
_LOOPBACK_HOSTS = frozenset({"localhost", "::1", "ip6-localhost"})
# Credentials and settings MLflow clients read, passed through by name when set on the host.
_PASS_THROUGH = {
    "http": ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
             "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_AWS_SIGV4"),
    "databricks": ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID",
                   "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE"),
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
           "AWS_DEFAULT_REGION", "AWS_PROFILE", "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_S3_IGNORE_TLS"),
    "azure": ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCESS_KEY", "AZURE_CLIENT_ID",
              "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"),
    "hdfs": ("MLFLOW_KERBEROS_TICKET_CACHE", "MLFLOW_KERBEROS_USER", "MLFLOW_PYARROW_EXTRA_CONF"),
}  # fmt: skip


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False

    def option(self) -> str:
        """The ``--mount`` value; CSV-quoted so paths with commas or quotes survive."""
        fields = ["type=bind", f"source={self.source}", f"target={self.target}"]
        if self.read_only:
            fields.append("readonly")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(fields)
        return buffer.getvalue()


@dataclass
class ContainerSpec:
    """One container: what ``docker run`` gets, in the order it gets it."""

    name: str
    image: str
    shell: str  # "bash" or "sh"
    command: str
    workdir: str = CODE_DIR
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the container's variables
    network: str | None = None
    # A tiny init as PID 1 forwards SIGTERM to the command (a shell or program as PID 1 ignores
    # it), so cancel stops the container at once instead of after the grace period.
    init: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # from docker_args, last: they win

    def add_mount(self, mount: Mount) -> None:
        """Add unless the target is already mounted (docker rejects duplicate targets)."""
        if all(m.target != mount.target for m in self.mounts):
            self.mounts.append(mount)

    def covered(self, path: Path) -> bool:
        """True when ``path`` is visible at the same path through an existing read-write mount."""
        return any(
            not m.read_only and str(m.source) == m.target and path.is_relative_to(m.source)
            for m in self.mounts
        )

    def argv(self, docker: str) -> list[str]:
        args = [docker, "run", "--rm", "--name", self.name]
        for key, value in self.labels.items():
            args += ["--label", f"{key}={value}"]
        if self.init:
            args.append("--init")
        args += ["-w", self.workdir]
        if self.network:
            args += ["--network", self.network]
        for mount in self.mounts:
            args += ["--mount", mount.option()]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}" if _inline(key) else key]
        return [*args, *self.extra_args, self.image, self.shell, "-c", self.command]

    def client_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The docker client's environment: ``base`` plus the variables passed by name."""
        env = dict(base)
        env.update({k: v for k, v in self.env.items() if not _inline(k)})
        return env


def _inline(name: str) -> bool:
    return name in _CLIENT_VARS or name.startswith(("DOCKER_", "LD_"))


# -- docker_args -------------------------------------------------------------------------------
def docker_arg_options(docker_args: Mapping[str, object]) -> list[str]:
    """``-A name=value`` -> ``--name value``; ``-A flag`` -> ``--flag``; one letter -> ``-k``.
    A False value leaves the flag out; "true"/"false" strings go as ``--name=value``."""
    args: list[str] = []
    for key, value in docker_args.items():
        if not _OPTION_NAME.match(str(key)):
            raise ExecutionException(
                f"docker_args: invalid option name {key!r}: use a `docker run` option name "
                "such as gpus, memory or shm-size (-A gpus=all)"
            )
        flag = f"-{key}" if len(key) == 1 else f"--{key}"
        if value is True or value is None:
            args.append(flag)
        elif value is False:
            continue
        elif str(value).lower() in ("true", "false") or str(value).startswith("-"):
            # One token: `--init=false` is how a boolean option takes a value, and a value
            # starting with "-" must not be read as the next option.
            args.append(f"{flag}={value}")
        else:
            args += [flag, str(value)]
    return args


# -- tracking and artifacts ------------------------------------------------------------------
def is_loopback_uri(uri: str) -> bool:
    host = (urlparse(uri).hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def add_tracking(
    spec: ContainerSpec, tracking_uri: str, host_env: Mapping[str, str]
) -> tuple[str, bool]:
    """Make the tracking store reachable from the container.

    Local stores (file store folder, SQLite file) are mounted at their own absolute path, so
    the URI stays valid and so do the artifact locations recorded inside the store (also for
    runs that code in the container creates). Returns (container URI, needs host network).
    """
    if tracking_uri == "databricks" or tracking_uri.startswith("databricks:"):
        _pass_through(spec, host_env, "databricks")
        return tracking_uri, False
    root = local_store_root(tracking_uri)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        spec.add_mount(Mount(root, str(root)))
        return root.as_uri(), False
    parsed = urlparse(tracking_uri)
    scheme = parsed.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        # sqlite:///rel.db is relative to the caller's folder; sqlite:////abs.db is absolute.
        raw = unquote(parsed.path)[1:] if parsed.path.startswith("/") else unquote(parsed.path)
        db = Path(raw).absolute()
        spec.add_mount(Mount(db.parent, str(db.parent)))
        return f"sqlite:///{db}", False
    if scheme in ("http", "https"):
        _pass_through(spec, host_env, "http")
        return tracking_uri, is_loopback_uri(tracking_uri)
    return tracking_uri, False


def add_artifacts(spec: ContainerSpec, artifact_uri: str, host_env: Mapping[str, str]) -> None:
    """Make the run's artifact store reachable: local folders mounted at the same path,
    cloud stores through their credentials."""
    local = local_store_root(artifact_uri) if artifact_uri else None
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
        if not spec.covered(local):
            spec.add_mount(Mount(local, str(local)))
        return
    scheme = urlparse(artifact_uri).scheme
    if scheme in ("s3", "s3a"):
        _pass_through(spec, host_env, "s3")
        aws_dir = Path(host_env.get("HOME", str(Path.home()))) / ".aws"
        if aws_dir.is_dir():
            spec.add_mount(Mount(aws_dir, "/mlflow/aws", read_only=True))
            spec.env["AWS_CONFIG_FILE"] = "/mlflow/aws/config"
            spec.env["AWS_SHARED_CREDENTIALS_FILE"] = "/mlflow/aws/credentials"
    elif scheme in ("wasbs", "wasb", "abfss", "abfs"):
        _pass_through(spec, host_env, "azure")
    elif scheme == "gs":
        credentials = host_env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if credentials and Path(credentials).is_file():
            spec.add_mount(Mount(Path(credentials).absolute(), "/mlflow/gcs.json", True))
            spec.env["GOOGLE_APPLICATION_CREDENTIALS"] = "/mlflow/gcs.json"
    elif scheme in ("hdfs", "viewfs"):
        _pass_through(spec, host_env, "hdfs")
        cache = host_env.get("MLFLOW_KERBEROS_TICKET_CACHE")
        if cache and Path(cache).exists():
            spec.add_mount(Mount(Path(cache), cache, read_only=True))


def _pass_through(spec: ContainerSpec, host_env: Mapping[str, str], group: str) -> None:
    for name in _PASS_THROUGH[group]:
        if name in host_env:
            spec.env.setdefault(name, host_env[name])


def add_path_parameters(spec: ContainerSpec, local_paths: Mapping[str, Path]) -> None:
    """Mount absolute ``path`` parameters at the same path, so the command's argument is valid
    inside the container. Existing paths are read-only; a path that does not exist yet (an
    output) gets its parent folder mounted read-write. Relative paths are relative to the
    project, which the container sees as its working directory."""
    for path in local_paths.values():
        if not path.is_absolute() or spec.covered(path):
            continue
        if path.exists():
            spec.add_mount(Mount(path, str(path), read_only=True))
        elif path.parent.is_dir() and path.parent != Path(path.anchor):
            spec.add_mount(Mount(path.parent, str(path.parent)))


# -- the image's shell -----------------------------------------------------------------------
def image_shell(cli: DockerCli, image_id: str) -> str:
    """``bash`` when the image has it, else ``sh``. Probed once per image id (one short
    container) and remembered under ``MLPROJ_HOME/docker``."""
    cache_file = home_subdir("docker") / "shells.json"
    cache = _read_json(cache_file)
    known = cache.get(image_id)
    if known in ("bash", "sh"):
        return str(known)
    result = cli.run(
        ["run", "--rm", "--network", "none", "--entrypoint", "bash", image_id, "-c", "exit 0"],
        timeout=300,
    )
    if result.returncode == 0:
        shell = "bash"
    elif "executable file not found" in result.stderr or "no such file" in result.stderr:
        shell = "sh"
    else:
        return "bash"  # the probe itself failed; the run will report the real problem
    cache = _read_json(cache_file)
    cache[image_id] = shell
    write_json_atomic(cache_file, {"version": 1, **cache})
    return shell


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def container_name(run_id: str, suffix: str) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", run_id)[:64]
    return f"mlproj-{safe}-{suffix}"
