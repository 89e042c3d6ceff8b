"""The ``virtualenv`` manager: the ``virtualenv`` package (or ``python -m venv``) plus pip.

Unlike MLflow's virtualenv manager it never builds Python from source with pyenv: it uses an
interpreter already on the machine, or one uv downloads when none fits.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import ClassVar

from mlproj.envs.buildlog import BuildLog
from mlproj.envs.python.interpreters import Interpreter
from mlproj.envs.python.venv_base import VenvManager

# virtualenv 20.x creates environments for these interpreters; older ones use venv.
_VIRTUALENV_MIN = (3, 8, 0)


class VirtualenvManager(VenvManager):
    name: ClassVar[str] = "virtualenv"
    tag_value: ClassVar[str | None] = "virtualenv"
    title: ClassVar[str] = "virtualenv"

    def create(
        self, env_dir: Path, interpreter: Interpreter, blog: BuildLog, env: dict[str, str]
    ) -> None:
        if interpreter.version >= _VIRTUALENV_MIN and importlib.util.find_spec("virtualenv"):
            argv = [sys.executable, "-m", "virtualenv", "--quiet", "--python",
                    str(interpreter.path), str(env_dir)]  # fmt: skip
        else:
            argv = [str(interpreter.path), "-m", "venv", str(env_dir)]
        blog.run("creating the virtual environment", argv, env, env_dir.parent)

    def install_argv(self, env_dir: Path, args: list[str], dry_run: bool = False) -> list[str]:
        argv = [str(env_dir / "bin" / "python"), "-m", "pip", "install",
                "--disable-pip-version-check"]  # fmt: skip
        return [*argv, "--dry-run", *args] if dry_run else [*argv, *args]
