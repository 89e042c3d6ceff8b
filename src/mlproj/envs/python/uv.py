"""The ``uv`` manager: virtual environments created and filled by uv (the default for
python_env projects, and for conda projects when no conda is installed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from mlproj.envs.buildlog import BuildLog
from mlproj.envs.python.interpreters import Interpreter
from mlproj.envs.python.pyspec import files_digest
from mlproj.envs.python.venv_base import ResolvedSpec, VenvManager, uv_available, uv_binary
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

_LOCK_FILES = ("uv.lock", "pyproject.toml", ".python-version")
_PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
}


class UvManager(VenvManager):
    name: ClassVar[str] = "uv"
    tag_value: ClassVar[str | None] = "uv"
    title: ClassVar[str] = "uv"

    def validate(self, project: Project) -> None:
        if not uv_available():
            raise ExecutionException(
                "uv was not found: install it with `pip install uv` (it is a dependency of mlproj)"
            )
        super().validate(project)

    @staticmethod
    def build_env(base: Mapping[str, str]) -> dict[str, str]:
        """pip's index settings from the environment also apply to uv (a user moving from
        virtualenv + pip keeps their mirror) unless uv's own are set."""
        env = VenvManager.build_env(base)
        for pip_name, uv_name in _PIP_TO_UV.items():
            if pip_name in env and uv_name not in env:
                value = env[pip_name]
                # pip separates find-links with spaces, uv with commas.
                env[uv_name] = ",".join(value.split()) if uv_name == "UV_FIND_LINKS" else value
        return env

    @staticmethod
    def lock_file(project: Project) -> Path | None:
        """``uv.lock`` of a python_env (or undeclared) project: restored with ``uv sync``."""
        lock = project.directory / "uv.lock"
        if project.env_type in ("python_env", "none") and lock.is_file():
            return lock
        return None

    def python_request(self, project: Project, resolved: ResolvedSpec) -> str | None:
        if resolved.spec.python is None and self.lock_file(project) is not None:
            pinned = project.directory / ".python-version"
            try:
                first = pinned.read_text(encoding="utf-8").strip().splitlines()
            except OSError:
                first = []
            if first and first[0].strip():
                return first[0].strip()
        return resolved.spec.python

    def extra_inputs(self, project: Project, resolved: ResolvedSpec) -> dict[str, Any]:
        if self.lock_file(project) is None:
            return {}
        files = [project.directory / name for name in _LOCK_FILES]
        return {"uv_lock": files_digest(files, project.directory)}

    def create(
        self, env_dir: Path, interpreter: Interpreter, blog: BuildLog, env: dict[str, str]
    ) -> None:
        argv = [uv_binary(), "venv", "--no-project", "--python", str(interpreter.path),
                str(env_dir)]  # fmt: skip
        blog.run("creating the virtual environment", argv, env, env_dir.parent)

    def install_argv(self, env_dir: Path, args: list[str], dry_run: bool = False) -> list[str]:
        argv = [uv_binary(), "pip", "install", "--python", str(env_dir / "bin" / "python")]
        return [*argv, "--dry-run", *args] if dry_run else [*argv, *args]

    def build(
        self,
        env_dir: Path,
        blog: BuildLog,
        project: Project,
        resolved: ResolvedSpec,
        interpreter: Interpreter,
        env: dict[str, str],
    ) -> dict[str, Any]:
        if self.lock_file(project) is None:
            return super().build(env_dir, blog, project, resolved, interpreter, env)
        if resolved.spec.dependencies or resolved.spec.build_dependencies:
            blog.log(
                f"{project.directory / 'uv.lock'} decides the environment; the dependencies of "
                f"{resolved.spec.source} are not installed"
            )
        sync_env = {**env, "UV_PROJECT_ENVIRONMENT": str(env_dir)}
        argv = [uv_binary(), "sync", "--frozen", "--no-dev", "--no-install-project",
                "--python", str(interpreter.path)]  # fmt: skip
        blog.run("restoring uv.lock with uv sync", argv, sync_env, project.directory)
        return {"dropped": [], "uv_lock": True}
