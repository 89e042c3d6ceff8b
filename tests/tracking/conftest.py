"""Store-facing tests run on both local stores: ``both_stores`` sets MLFLOW_TRACKING_URI to a file
store or to a SQLite database (one per test) and returns the URI."""

from __future__ import annotations

from pathlib import Path

import pytest

STORE_KINDS = ("file", "sqlite")


def store_uri(kind: str, folder: Path) -> str:
    """A fresh tracking URI of ``kind`` inside ``folder``."""
    if kind == "file":
        return (folder / "mlruns").as_uri()
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(params=STORE_KINDS)
def both_stores(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    uri = store_uri(str(request.param), tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # Both stores put artifacts under the current folder's mlruns when nothing else says so.
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def in_tmp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the test's folder: a SQL store's default artifact root is ``./mlruns`` of the
    folder an experiment is created from, and tests must not write into the work tree."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
