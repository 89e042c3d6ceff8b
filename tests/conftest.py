"""Shared by every test: isolation (each test gets its own MLPROJ_HOME and tracking store) and
loopback servers: a folder over HTTP, one real MLflow server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared_servers import MlflowServer, serve_folder

STORE_KINDS = ("file", "sqlite")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Store-facing modules (``pytestmark = pytest.mark.usefixtures("tracking_store_kind")``)
    run every test on both local stores: the file store and MLflow's default SQLite store."""
    if "tracking_store_kind" in metafunc.fixturenames:
        metafunc.parametrize("tracking_store_kind", STORE_KINDS)


@pytest.fixture
def tracking_store_kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "file"))


@pytest.fixture(autouse=True)
def _isolated_mlproj(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("MLPROJ_HOME", str(tmp_path / "mlproj-home"))
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("tracking_store_kind", "file") if callspec else "file"
    if kind == "sqlite":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        # MLflow's SQL store puts artifacts under ./mlruns of the current folder.
        monkeypatch.chdir(tmp_path)
    else:
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
