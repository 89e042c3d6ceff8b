"""Talking to Docker through its CLI: executable lookup, daemon check, image queries, login.

mlproj drives the ``docker`` CLI (argv lists, never a shell string) rather than the SDK: the
container itself must be started by a foreground ``docker run`` process anyway (its output is
the run's output and its process group is what cancel signals), and the CLI honours the user's
contexts, ``DOCKER_HOST`` and credential helpers exactly as ``docker`` on the terminal does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.redaction import Redactor

INSTALL_HINT = (
    "Install Docker (https://docs.docker.com/engine/install/) and make sure `docker` is on PATH"
)
# docker-py's login() keywords, which MLflow's docker_auth passes through; accepted here too.
AUTH_KEYS = frozenset({"username", "password", "registry", "email", "reauth", "dockercfg_path"})


def docker_executable(env: Mapping[str, str] | None = None) -> str:
    """The ``docker`` CLI on PATH (of ``env`` when given), or a one-line error saying what to do."""
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which("docker", path=path)
    if found is None:
        raise ExecutionException(
            f"Docker is not installed: no `docker` executable on PATH. {INSTALL_HINT}, "
            "or run the project without its docker_env."
        )
    return found


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


class DockerCli:
    """Runs ``docker`` commands with one explicit environment; redacts known secrets."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env: dict[str, str] = dict(env if env is not None else os.environ)
        self.executable = docker_executable(self.env)
        # Secrets given explicitly (a registry password) are masked whatever their length.
        self.redact = Redactor(min_length=1)

    def add_secret(self, value: str) -> None:
        self.redact.add(value)

    def run(
        self,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker <args>`` capturing its output; never raises for a non-zero exit."""
        try:
            return subprocess.run(
                [self.executable, *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(
                [self.executable, *args], 124, "", f"timed out after {timeout:g} s"
            )

    def error_text(self, result: subprocess.CompletedProcess[str]) -> str:
        """The last meaningful line of a failed command's output, secrets redacted."""
        return self.redact(_first_line(result.stderr or result.stdout))

    # -- checks and queries -------------------------------------------------------------------
    def check_daemon(self) -> None:
        result = self.run(["version", "--format", "{{.Server.Version}}"], timeout=30)
        if result.returncode != 0 or not result.stdout.strip():
            where = self.env.get("DOCKER_HOST") or "the default socket /var/run/docker.sock"
            raise ExecutionException(
                f"Cannot reach the Docker daemon at {where}: {self.error_text(result)}. "
                "Start it (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at a "
                "running daemon."
            )

    def image_id(self, ref: str) -> str | None:
        """The local image id (``sha256:...``) of ``ref``, or None when it is not here."""
        result = self.run(["image", "inspect", "--format", "{{.Id}}", ref], timeout=60)
        if result.returncode != 0:
            return None
        return result.stdout.strip() or None

    def pull(self, ref: str) -> None:
        result = self.run(["pull", "--quiet", ref], timeout=3600)
        if result.returncode != 0:
            raise ExecutionException(
                f"Docker image {ref!r} is not on this machine and could not be pulled: "
                f"{self.error_text(result)}. Check the image name and your access to its "
                "registry (docker_auth), or build it locally with `docker build -t "
                f"{ref} .`."
            )


def registry_of(image_ref: str) -> str | None:
    """The registry host of an image reference, None for Docker Hub (``name``, ``org/name``)."""
    first, sep, _rest = image_ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


@contextmanager
def logged_in(cli: DockerCli, auth: Mapping[str, object] | None, image_ref: str) -> Iterator[None]:
    """Log ``cli`` in to a registry for the duration of the block, without touching the
    user's Docker config: the login goes to a private, temporary ``DOCKER_CONFIG`` that is
    deleted afterwards. The password goes through stdin only, never argv, logs or errors."""
    if not auth:
        yield
        return
    unknown = sorted(set(auth) - AUTH_KEYS)
    if unknown:
        raise ExecutionException(
            f"docker_auth: unknown key(s) {', '.join(unknown)}; "
            f"valid keys are {', '.join(sorted(AUTH_KEYS))}"
        )
    username = str(auth.get("username") or "")
    password = str(auth.get("password") or "")
    if not username or not password:
        raise ExecutionException("docker_auth: both 'username' and 'password' must be given")
    cli.add_secret(password)
    registry = str(auth.get("registry") or "") or registry_of(image_ref)
    saved_env = dict(cli.env)
    with tempfile.TemporaryDirectory(prefix="mlproj-docker-config-") as config_dir:
        _seed_config(Path(config_dir), auth, saved_env)
        cli.env["DOCKER_CONFIG"] = config_dir
        try:
            args = ["login", "--username", username, "--password-stdin"]
            if registry:
                args.append(registry)
            result = cli.run(args, stdin=password + "\n", timeout=120)
            if result.returncode != 0:
                raise ExecutionException(
                    f"docker_auth: login to {registry or 'Docker Hub'} as {username!r} failed: "
                    f"{cli.error_text(result)}. Check the username, password and registry."
                )
            yield
        finally:
            cli.env = saved_env


def _seed_config(config_dir: Path, auth: Mapping[str, object], env: Mapping[str, str]) -> None:
    """Give the temporary config the user's contexts and CLI plugins, so ``docker`` still
    reaches the same daemon; credentials stay out of the user's own config file."""
    user_dir = Path(
        str(auth.get("dockercfg_path") or "") or env.get("DOCKER_CONFIG") or Path.home() / ".docker"
    ).expanduser()
    if user_dir.is_file():  # docker-py's dockercfg_path may name the file itself
        user_dir = user_dir.parent
    for name in ("contexts", "cli-plugins"):
        if (user_dir / name).is_dir():
            (config_dir / name).symlink_to(user_dir / name)
    user_config = user_dir / "config.json"
    if user_config.is_file():
        import json

        try:
            data = json.loads(user_config.read_text())
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict) and "currentContext" in data:
            (config_dir / "config.json").write_text(
                json.dumps({"currentContext": data["currentContext"]})
            )
