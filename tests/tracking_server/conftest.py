"""The tracking-server tests: no client variables from the developer's shell, and more real
MLflow servers on demand (the shared SQLite one is ``mlflow_server`` from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.shared_servers import MlflowServer

# Nothing from the developer's shell may leak into the clients under test (the servers never
# see any MLFLOW_* variable of the test process).
_CLIENT_VARS = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)


@pytest.fixture(autouse=True)
def _clean_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CLIENT_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def mlflow_server_factory() -> type[MlflowServer]:
    """Start more servers (e.g. over a file store): ``factory(backend_uri, workdir)``."""
    return MlflowServer
