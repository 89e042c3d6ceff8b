"""Shared by every test: isolation (each test gets its own MLPROJ_HOME and tracking store) and
loopback servers: a folder over HTTP, one real MLflow server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shared_servers import MlflowServer, serve_folder


@pytest.fixture(autouse=True)
def _isolated_mlproj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJ_HOME", str(tmp_path / "mlproj-home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over http://127.0.0.1:<port>/ by a thread: (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as base:
        yield root, base


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A SQLite-backed ``mlflow server`` on loopback proxying artifacts into a local folder,
    started once per session. Tests share it: each uses its own experiments or run ids."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"sqlite:///{workdir / 'mlflow.db'}", workdir)
    yield server
    server.stop()
