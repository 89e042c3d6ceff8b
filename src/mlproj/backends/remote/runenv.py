"""The variables a job on another machine needs to log into the run mlproj opened.

Neither a Slurm job (sites set ``SBATCH_EXPORT=NONE``) nor a Ray job (the client's environment
never reaches it) can be trusted to inherit the submitting environment, so these are passed
explicitly: MLflow's run variables and whatever tracking or artifact credentials are set here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Credentials and settings MLflow clients read; passed on by name when set on the submitting
# host. Their values are secrets: they go into the job's environment only, never into a
# tag, a log line or an error.
CREDENTIAL_VARS: tuple[str, ...] = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_S3_IGNORE_TLS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCESS_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
)


def run_variables(
    *,
    tracking_uri: str,
    run_id: str,
    experiment_id: str,
    host_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """MLflow's run variables plus the credentials set in ``host_env`` (default: ours)."""
    source = os.environ if host_env is None else host_env
    variables = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": experiment_id,
        # Output reaches the log as it is written, not when a 8 KiB buffer fills.
        "PYTHONUNBUFFERED": "1",
    }
    if tracking_uri.startswith("file:"):
        variables["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow >= 3.13 refuses it otherwise
    for name in CREDENTIAL_VARS:
        value = source.get(name)
        if value:
            variables[name] = value
    return variables
