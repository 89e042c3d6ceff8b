"""Log into the run mlproj opened: with mlflow when installed, else with mlproj's client.

mlproj gives every run MLFLOW_TRACKING_URI and MLFLOW_RUN_ID, so either client writes into
the same run."""

from __future__ import annotations

import os
import time
from pathlib import Path


def log_metric(key: str, value: float) -> None:
    try:
        import mlflow
    except ImportError:
        from mlproj.tracking import get_store
        from mlproj.tracking.entities import Metric

        metric = Metric(key, float(value), int(time.time() * 1000))
        get_store().log_batch(os.environ["MLFLOW_RUN_ID"], metrics=[metric])
    else:
        with mlflow.start_run():
            mlflow.log_metric(key, value)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    try:
        import mlflow
    except ImportError:
        from mlproj.tracking import get_store

        get_store().log_artifact(os.environ["MLFLOW_RUN_ID"], path, artifact_path)
    else:
        with mlflow.start_run():
            mlflow.log_artifact(str(path), artifact_path)
