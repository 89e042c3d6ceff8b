"""The ``conda`` manager: a real conda, mamba or micromamba builds the project's conda.yaml.

The executable is found as MLflow finds it: ``$MLFLOW_CONDA_HOME/bin/conda``, else the
``conda`` beside ``$CONDA_EXE``, else ``conda`` / ``mamba`` / ``micromamba`` on PATH;
``$MLFLOW_CONDA_CREATE_ENV_CMD`` (for example ``mamba``) names the executable that creates
environments. Environments are conda prefixes inside mlproj's cache, so they share its key,
lock and marker logic with the Python managers.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlproj.envs.base import EnvironmentManager, EnvRequest, LaunchPlan
from mlproj.envs.buildlog import BuildLog
from mlproj.envs.cache import ensure, make_key
from mlproj.envs.python.pyspec import files_digest, referenced_files
from mlproj.errors import ExecutionException, one_line
from mlproj.spec.project import Project
from mlproj.tags import TAG_ENV_KEY

_INSTALL_HINT = (
    "Install conda, mamba or micromamba (https://conda.io/projects/conda/en/latest/user-guide/"
    "install/index.html), or set MLFLOW_CONDA_HOME to its installation folder; or run with "
    "--env-manager uv to convert conda.yaml for uv"
)


@dataclass(frozen=True)
class CondaTools:
    conda: Path  # used for activation
    create: Path  # used to create environments (MLFLOW_CONDA_CREATE_ENV_CMD)

    @property
    def flavor(self) -> str:
        """``micromamba`` has its own command line; conda and mamba share one."""
        return "micromamba" if "micromamba" in self.create.name else "conda"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_conda(environ: Mapping[str, str] | None = None) -> CondaTools | None:
    """The conda executables to use, or None when there is no working one."""
    env = os.environ if environ is None else environ
    conda: Path | None = None
    if env.get("MLFLOW_CONDA_HOME"):
        conda = Path(env["MLFLOW_CONDA_HOME"]) / "bin" / "conda"
    elif env.get("CONDA_EXE"):
        exe = Path(env["CONDA_EXE"])
        conda = exe.parent / "conda" if _executable(exe.parent / "conda") else exe
    elif env.get("MAMBA_EXE"):
        conda = Path(env["MAMBA_EXE"])
    else:
        for name in ("conda", "mamba", "micromamba"):
            found = shutil.which(name, path=env.get("PATH"))
            if found:
                conda = Path(found)
                break
    if conda is None or not _executable(conda):
        return None
    create = conda
    create_name = env.get("MLFLOW_CONDA_CREATE_ENV_CMD")
    if create_name and create_name != conda.name:
        beside = conda.parent / create_name
        found = (
            str(beside) if _executable(beside) else shutil.which(create_name, path=env.get("PATH"))
        )
        if found is None:
            return CondaTools(conda, conda.parent / create_name)  # reported by validate
        create = Path(found)
    return CondaTools(conda, create)


class CondaManager(EnvironmentManager):
    name: ClassVar[str] = "conda"
    tag_value: ClassVar[str | None] = "conda"

    def tools(self, environ: Mapping[str, str] | None = None) -> CondaTools:
        tools = find_conda(environ)
        env = os.environ if environ is None else environ
        if tools is None:
            where = (
                f"MLFLOW_CONDA_HOME={env['MLFLOW_CONDA_HOME']} has no bin/conda"
                if env.get("MLFLOW_CONDA_HOME")
                else "no conda, mamba or micromamba was found (CONDA_EXE, PATH)"
            )
            raise ExecutionException(f"Could not find a conda executable: {where}. {_INSTALL_HINT}")
        if not _executable(tools.create):
            raise ExecutionException(
                f"MLFLOW_CONDA_CREATE_ENV_CMD={env.get('MLFLOW_CONDA_CREATE_ENV_CMD')} is set, "
                f"but {tools.create} does not exist or is not executable; install it or unset "
                "the variable"
            )
        return tools

    def validate(self, project: Project) -> None:
        self.tools()
        self._conda_file(project)

    @staticmethod
    def _conda_file(project: Project) -> Path:
        if project.env_type != "conda_env" or project.env_file is None:
            raise ExecutionException(
                "The conda manager needs a conda environment file (conda.yaml); this project "
                "declares none. Use --env-manager uv, virtualenv or local."
            )
        if not project.env_file.is_file():
            raise ExecutionException(f"{project.env_file}: conda environment file not found")
        return project.env_file

    def create_argv(self, tools: CondaTools, env_dir: Path, conda_file: Path) -> list[str]:
        if tools.flavor == "micromamba":
            return [str(tools.create), "create", "--yes", "--prefix", str(env_dir),
                    "--file", str(conda_file)]  # fmt: skip
        return [str(tools.create), "env", "create", "--prefix", str(env_dir),
                "--file", str(conda_file)]  # fmt: skip

    def prepare(self, request: EnvRequest) -> LaunchPlan:
        project = request.project
        tools = self.tools(request.env)
        conda_file = self._conda_file(project)
        raw = conda_file.read_bytes()
        pip_files = referenced_files(_pip_lines(raw), conda_file.parent)
        inputs: dict[str, Any] = {
            # conda.yaml's text, as MLflow keys conda envs; pip -r files by content.
            "conda_yaml": hashlib.sha256(raw).hexdigest(),
            "files": files_digest(pip_files, project.directory),
            "create": str(tools.create),
        }
        key = make_key(self.name, inputs)

        def build(env_dir: Path, blog: BuildLog) -> dict[str, Any]:
            env = {k: v for k, v in request.env.items() if k != "CONDA_PREFIX"}
            argv = self.create_argv(tools, env_dir, conda_file)
            blog.run(f"creating the conda environment with {tools.create.name}", argv, env,
                     conda_file.parent)  # fmt: skip
            return {"conda": str(tools.conda)}

        entry, _meta = ensure(
            key,
            build,
            title=f"Building the conda environment ({tools.create.name})",
            log=request.log,
            project_dir=project.directory,
        )
        request.set_tags({TAG_ENV_KEY: key.name})
        return self.launch_plan(tools, entry.env_dir, request)

    def launch_plan(self, tools: CondaTools, prefix: Path, request: EnvRequest) -> LaunchPlan:
        """Activation scripts (etc/conda/activate.d) need conda's own activation; without them
        setting the variables directly is equivalent and faster."""
        env = {k: v for k, v in request.env.items() if k != "PYTHONHOME"}
        activate_d = prefix / "etc" / "conda" / "activate.d"
        if activate_d.is_dir() and any(activate_d.iterdir()):
            conda, target = shlex.quote(str(tools.conda)), shlex.quote(str(prefix))
            if "micromamba" in tools.conda.name:
                hook = f'eval "$({conda} shell hook --shell bash)" && micromamba activate {target}'
            else:
                hook = f'eval "$({conda} shell.bash hook)" && conda activate {target}'
            script = f"{hook} 1>&2 && {request.command}"
        else:
            env["PATH"] = str(prefix / "bin") + os.pathsep + env.get("PATH", "")
            env["CONDA_PREFIX"] = str(prefix)
            env["CONDA_DEFAULT_ENV"] = str(prefix)
            script = request.command
        return LaunchPlan(argv=["bash", "-c", script], env=env, cwd=request.project.directory)


def _pip_lines(raw: bytes) -> tuple[str, ...]:
    """The ``pip:`` requirement lines of a conda.yaml (only to hash the files they name)."""
    import yaml

    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ExecutionException(
            f"conda environment file is not valid YAML: {one_line(str(exc))}"
        ) from None
    lines: list[str] = []
    deps = data.get("dependencies") if isinstance(data, dict) else None
    for item in deps if isinstance(deps, list) else []:
        if isinstance(item, dict) and isinstance(item.get("pip"), list):
            lines.extend(str(line) for line in item["pip"])
    return tuple(lines)
