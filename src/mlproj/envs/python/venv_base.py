"""What the ``uv`` and ``virtualenv`` managers share: the spec they build from (python_env.yaml,
a converted conda.yaml, or the default), the interpreter, the cache key, and activation by
environment variables (faster than sourcing ``bin/activate`` in a shell)."""

from __future__ import annotations

import functools
import os
import subprocess
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlproj.envs.base import EnvironmentManager, EnvRequest, LaunchPlan
from mlproj.envs.buildlog import BuildFailed, BuildLog
from mlproj.envs.cache import ensure, envs_root, make_key
from mlproj.envs.python.interpreters import Interpreter, discover, find_interpreter, matcher
from mlproj.envs.python.pyspec import (
    PythonEnvSpec,
    files_digest,
    has_local_paths,
    install_args,
    load_python_env,
    referenced_files,
)
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project
from mlproj.tags import TAG_ENV_KEY


@dataclass(frozen=True)
class ResolvedSpec:
    spec: PythonEnvSpec
    from_conda: bool = False
    dropped: tuple[str, ...] = ()  # conda entries dropped before any install attempt


def resolve_spec(project: Project) -> ResolvedSpec:
    """The Python environment spec of a project, whatever kind of environment it declares."""
    if project.env_type == "conda_env" and project.env_file is not None:
        from mlproj.envs.python.condaspec import convert_conda_file

        converted = convert_conda_file(project.env_file)
        return ResolvedSpec(converted.spec, from_conda=True, dropped=converted.dropped)
    if project.env_type == "python_env" and project.env_file is not None:
        return ResolvedSpec(load_python_env(project.env_file))
    if project.env_type == "docker":
        raise ExecutionException(
            "This project declares docker_env; it runs in Docker, not in a Python environment"
        )
    return ResolvedSpec(PythonEnvSpec(python=None))  # nothing declared: current Python, no deps


def activated_env(base: Mapping[str, str], env_dir: Path) -> dict[str, str]:
    """The child's environment with the virtualenv active (what bin/activate would export)."""
    env = dict(base)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PATH"] = str(env_dir / "bin") + os.pathsep + env.get("PATH", "")
    return env


def uv_available() -> bool:
    """Cheap check for validate(): the uv package (or a uv on PATH) is there."""
    import importlib.util
    import shutil

    return importlib.util.find_spec("uv") is not None or shutil.which("uv") is not None


@functools.cache
def uv_binary() -> str:
    """The uv executable shipped by the ``uv`` PyPI package (a dependency of mlproj)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("uv")
        if found is None:
            raise ExecutionException(
                "uv was not found: install it with `pip install uv` (it is a dependency of mlproj)"
            ) from None
        return found


class VenvManager(EnvironmentManager):
    """Base of the managers that build a virtual environment from a :class:`PythonEnvSpec`."""

    #: Short noun for messages: "uv", "virtualenv".
    title: ClassVar[str]

    def __init__(self) -> None:
        self._resolved: dict[Path | None, ResolvedSpec] = {}

    # -- hooks for the concrete managers -------------------------------------------------------
    @abstractmethod
    def create(
        self,
        env_dir: Path,
        interpreter: Interpreter,
        blog: BuildLog,
        env: dict[str, str],
    ) -> None:
        """Create an empty virtual environment at ``env_dir``."""

    @abstractmethod
    def install_argv(self, env_dir: Path, args: list[str], dry_run: bool = False) -> list[str]:
        """The command that installs ``args`` (requirement arguments) into ``env_dir``."""

    def extra_inputs(self, project: Project, resolved: ResolvedSpec) -> dict[str, Any]:
        """More cache-key inputs (uv adds its lock file)."""
        return {}

    def python_request(self, project: Project, resolved: ResolvedSpec) -> str | None:
        return resolved.spec.python

    def build(
        self,
        env_dir: Path,
        blog: BuildLog,
        project: Project,
        resolved: ResolvedSpec,
        interpreter: Interpreter,
        env: dict[str, str],
    ) -> dict[str, Any]:
        if resolved.from_conda:
            blog.log(
                f"Converting {project.env_file} for {self.title}: conda packages are installed "
                "from PyPI where they exist"
            )
        self.create(env_dir, interpreter, blog, env)
        dropped = self.install_spec(env_dir, blog, project.directory, resolved.spec, env)
        return {"dropped": [*resolved.dropped, *dropped]}

    # -- the EnvironmentManager interface ------------------------------------------------------
    def validate(self, project: Project) -> None:
        resolved = self.resolve(project)
        matcher(self.python_request(project, resolved), where=f"{resolved.spec.source}: python")

    def prepare(self, request: EnvRequest) -> LaunchPlan:
        project = request.project
        resolved = self.resolve(project)
        build_env = self.build_env(request.env)
        interpreter = self.interpreter(self.python_request(project, resolved), resolved, request)
        spec = resolved.spec
        lines = (*spec.build_dependencies, *spec.dependencies, *spec.optional_dependencies)
        inputs: dict[str, Any] = {
            # The version request is not part of the key: "3.10" and "3.10.13" that resolve
            # to one interpreter share an environment.
            "spec": {k: v for k, v in spec.as_dict().items() if k != "python"},
            "conda_dropped": list(resolved.dropped),
            "interpreter": [str(interpreter.path), interpreter.version_text],
            "files": files_digest(referenced_files(lines, project.directory), project.directory),
            **self.extra_inputs(project, resolved),
        }
        if has_local_paths(lines):
            inputs["project"] = str(project.directory)  # ./pkg means something per project
        key = make_key(self.name, inputs)
        entry, meta = ensure(
            key,
            lambda env_dir, blog: self.build(
                env_dir, blog, project, resolved, interpreter, build_env
            ),
            title=f"Building the {self.title} environment (Python {interpreter.version_text})",
            log=request.log,
            project_dir=project.directory,
        )
        request.set_tags({TAG_ENV_KEY: key.name})
        dropped = meta.get("dropped") or []
        if dropped:
            request.log(
                f"Warning: {project.env_file}: these conda dependencies were dropped because they "
                f"cannot be installed from PyPI: {', '.join(str(d) for d in dropped)}"
            )
        return LaunchPlan(
            argv=["bash", "-c", request.command],
            env=activated_env(request.env, entry.env_dir),
            cwd=project.directory,
        )

    # -- shared steps --------------------------------------------------------------------------
    def resolve(self, project: Project) -> ResolvedSpec:
        if project.env_file not in self._resolved:
            self._resolved[project.env_file] = resolve_spec(project)
        return self._resolved[project.env_file]

    @staticmethod
    def build_env(base: Mapping[str, str]) -> dict[str, str]:
        """Environment for build commands: never inside the caller's venv, never download."""
        env = dict(base)
        for name in ("VIRTUAL_ENV", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX"):
            env.pop(name, None)
        env["UV_PYTHON_DOWNLOADS"] = "never"
        return env

    def interpreter(
        self, request_text: str | None, resolved: ResolvedSpec, request: EnvRequest
    ) -> Interpreter:
        """A local interpreter for the request; download one with uv only when none fits."""
        cache_file = envs_root() / ".interpreters.json"
        found = find_interpreter(request_text, cache_file)
        if found is not None:
            return found
        assert request_text is not None  # None always finds the current interpreter
        where = f"{resolved.spec.source}: python: {request_text!r}"
        if request.env.get("UV_PYTHON_DOWNLOADS") == "never":
            detail = "downloads are disabled (UV_PYTHON_DOWNLOADS=never)"
        else:
            request.log(f"No local Python matches {request_text!r}; downloading one with uv")
            env = dict(request.env)
            env.pop("UV_PYTHON_DOWNLOADS", None)
            proc = subprocess.run(
                [uv_binary(), "python", "install", request_text],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                found = find_interpreter(request_text, cache_file)
                if found is not None:
                    return found
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            detail = "downloading one with `uv python install` failed:\n    " + "\n    ".join(
                tail or ["(no output)"]
            )
        listing = "\n".join(
            f"  - {i.describe()}" for i in sorted(discover(cache_file), key=lambda i: i.version)
        )
        raise ExecutionException(
            f"{where}: no Python interpreter on this machine matches, and {detail}\n"
            f"Interpreters found:\n{listing}\n"
            f"Install a matching Python (for example `uv python install {request_text}` or "
            "pyenv), or change the version in the environment file."
        )

    def install_spec(
        self,
        env_dir: Path,
        blog: BuildLog,
        cwd: Path,
        spec: PythonEnvSpec,
        env: dict[str, str],
    ) -> list[str]:
        """Install build dependencies, then dependencies; return optional ones dropped."""
        if spec.build_dependencies:
            argv = self.install_argv(env_dir, install_args(spec.build_dependencies))
            blog.run("installing build dependencies", argv, env, cwd)
        args = install_args(spec.dependencies)
        optional = list(spec.optional_dependencies)
        dropped: list[str] = []
        if optional:
            try:
                blog.run(
                    "installing dependencies", self.install_argv(env_dir, args + optional), env, cwd
                )
            except BuildFailed:
                blog.note("# some conda packages may not exist on PyPI: trying them one by one")
                optional, dropped = self._split_installable(env_dir, blog, cwd, optional, env)
            else:
                return []
        if args or optional:
            blog.run(
                "installing dependencies", self.install_argv(env_dir, args + optional), env, cwd
            )
        return dropped

    def _split_installable(
        self,
        env_dir: Path,
        blog: BuildLog,
        cwd: Path,
        candidates: list[str],
        env: dict[str, str],
    ) -> tuple[list[str], list[str]]:
        keep: list[str] = []
        dropped: list[str] = []
        for req in candidates:
            argv = self.install_argv(env_dir, [req], dry_run=True)
            code = blog.run(f"checking {req} on PyPI", argv, env, cwd, check=False)
            (keep if code == 0 else dropped).append(req)
        return keep, dropped
