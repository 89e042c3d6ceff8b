"""The REST store against a real MLflow server with its basic-auth app (``--app-name
basic-auth``): credentials from MLflow's variables or the URI, and rejections that never show
the password."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking.rest_store import RestStore

ADMIN_PASSWORD = "adm1n-pass-xyz"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("flask_wtf") is None,
    reason="MLflow's basic-auth app needs Flask-WTF (pip install 'mlflow[auth]')",
)


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server_factory: Any
) -> Iterator[str]:
    # The auth app keeps its users in basic_auth.db in the server's cwd (this workdir).
    workdir = tmp_path_factory.mktemp("auth-server")
    server = mlflow_server_factory(
        f"sqlite:///{workdir / 'mlflow.db'}",
        workdir,
        extra_args=("--app-name", "basic-auth"),
        extra_env={
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-secret",
        },
    )
    yield server.url
    server.stop()


def test_credentials_from_mlflow_variables(
    auth_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    store = RestStore(auth_server)
    exp = store.create_experiment("authed")
    info = store.create_run(exp, run_name="a", tags={}, user_id="admin")
    store.log_batch(info.run_id, params={"k": "v"})
    log = tmp_path / "output.log"
    log.write_text("secret-free log\n")
    store.log_artifact(info.run_id, log, "mlproj")  # the artifact proxy is behind auth too
    run = store.get_run(info.run_id)
    assert run.params == {"k": "v"}
    assert store.read_artifact(run, "mlproj/output.log") == b"secret-free log\n"


def test_credentials_in_the_uri(auth_server: str) -> None:
    url = auth_server.replace("http://", f"http://admin:{ADMIN_PASSWORD}@")
    assert RestStore(url).get_experiment("0") is not None


@pytest.mark.parametrize("password", [None, "wrong-password-123"])
def test_rejected_without_leaking_the_password(
    auth_server: str, monkeypatch: pytest.MonkeyPatch, password: str | None
) -> None:
    if password:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    with pytest.raises(ExecutionException) as caught:
        RestStore(auth_server).get_experiment("0")
    message = str(caught.value)
    assert "HTTP 401" in message and "MLFLOW_TRACKING_USERNAME" in message
    assert "\n" not in message
    if password:
        assert password not in message


def test_cli_rejection_is_one_line(auth_server: str) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": "wrong-password-123",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "list", "--tracking-uri", auth_server],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlproj: error: MLflow tracking server") and "HTTP 401" in line
    assert "wrong-password-123" not in line
