"""The real ``mlflow`` package run in a child Python against a store, as it runs inside a
project run: none of the test process's MLFLOW_* variables, the store as
``MLFLOW_TRACKING_URI``, and the script's last output line read back as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PRELUDE = "import json, os, sys\nimport mlflow\nfrom mlflow import MlflowClient\n"


def run_mlflow(
    code: str,
    tracking_uri: str,
    *args: str,
    run_id: str | None = None,
    python: str | Path = sys.executable,
    allow_file_store: bool = True,
) -> Any:
    """Run ``code`` (after PRELUDE) with ``args`` in ``python``; return its JSON output.

    ``allow_file_store`` sets MLFLOW_ALLOW_FILE_STORE=true, which MLflow >= 3.13 requires for
    file stores; MLflow 2.x runs without it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    if allow_file_store:
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    if run_id is not None:
        env["MLFLOW_RUN_ID"] = run_id
    done = subprocess.run(
        [str(python), "-c", PRELUDE + textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
