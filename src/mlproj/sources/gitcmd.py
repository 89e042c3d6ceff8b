"""Running ``git`` non-interactively, with credentials scrubbed from anything it prints."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mlproj.errors import ExecutionException, one_line
from mlproj.redaction import scrub_text, strip_credentials

# `git ls-remote` (the first contact with a remote) gives up after MLPROJ_GIT_TIMEOUT seconds
# (settings.GIT_TIMEOUT, default 60): an unreachable host must fail, never hang.
# Transfers (fetch, submodules) of big repositories legitimately take longer.
TRANSFER_TIMEOUT_FACTOR = 30


class GitError(Exception):
    """A git command failed; ``stderr`` is already scrubbed of credentials and folded into one
    line (it ends up inside one-line error messages)."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(stderr)
        self.args_list = list(args)
        self.returncode = returncode
        self.stderr = stderr


def git_executable() -> str:
    # Looked up again when PATH changes (a long-lived API user, a test), else once.
    return _git_on_path(os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=4)
def _git_on_path(path: str) -> str:
    import shutil  # here: shutil imports bz2 and lzma, unused by most runs

    found = shutil.which("git", path=path or None)
    if found is None:
        raise ExecutionException(
            "Git is not installed or not on PATH; install git to run projects from Git URIs."
        )
    return found


def has_remote_helper(scheme: str) -> bool:
    """True when git can fetch ``scheme://`` URLs through a remote helper (``git-remote-<scheme>``
    on PATH or in git's exec path, e.g. git-remote-codecommit)."""
    helper = f"git-remote-{scheme}"
    import shutil

    if shutil.which(helper):
        return True
    try:
        found = git_executable()
    except ExecutionException:
        return False
    try:
        exec_path = subprocess.run(
            [found, "--exec-path"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(exec_path) and (Path(exec_path) / helper).is_file()


def git_env() -> dict[str, str]:
    """The environment for git: never prompt, fail fast on dead connections."""
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GCM_INTERACTIVE"] = "never"  # Git Credential Manager
    env.pop("GIT_ASKPASS", None)
    env.pop("SSH_ASKPASS", None)
    env.setdefault("LC_ALL", "C")  # stable, parseable messages
    return env


def network_timeout() -> float:
    from mlproj.settings import GIT_TIMEOUT

    return GIT_TIMEOUT.get()


# Abort transfers that stall (no progress for 30 s) instead of waiting forever.
_NETWORK_CONFIG = ("-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=30")


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    secret_url: str | None = None,
    network: bool = False,
    transfer: bool = False,
) -> str:
    """Run ``git args`` and return stdout; raise GitError with scrubbed stderr on failure."""
    argv = [git_executable()]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    if network:
        argv += list(_NETWORK_CONFIG)
    if secret_url and strip_credentials(secret_url) != secret_url:
        # The URL carries its own credentials: keep helpers (e.g. `store`) from saving them.
        argv += ["-c", "credential.helper="]
    argv += list(args)
    timeout = network_timeout() if network else None
    if timeout is not None and transfer:
        timeout *= TRANSFER_TIMEOUT_FACTOR
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            # No controlling terminal: ssh and credential helpers cannot prompt, they fail.
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise GitError(
            args, -1, f"git {args[0]} gave no result within {timeout:.0f} s (MLPROJ_GIT_TIMEOUT)"
        ) from None
    if done.returncode != 0:
        message = one_line(scrub_text(done.stderr.strip() or done.stdout.strip(), secret_url))
        raise GitError(args, done.returncode, message)
    return done.stdout
