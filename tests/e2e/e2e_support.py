"""Helpers for whole runs: the CLI in a subprocess, MLflow as a reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

MakeProject = Callable[..., Path]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )


def mlflow_read(script: str) -> Any:
    """Run ``script`` with the real mlflow client in a child; it prints JSON we return."""
    code = (
        "import json, mlflow\nfrom mlflow.tracking import MlflowClient\nclient = MlflowClient()\n"
    )
    code += textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
