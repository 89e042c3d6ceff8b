"""Helpers for whole runs: a project factory, the CLI in a subprocess, MLflow as a reader."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore
from tests.e2e.e2e_support import MakeProject


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Write a project folder: an MLproject text plus extra files."""

    def make(mlproject: str, name: str = "proj", **files: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "MLproject").write_text(textwrap.dedent(mlproject))
        for filename, content in files.items():
            (folder / filename.replace("__", ".")).write_text(textwrap.dedent(content))
        return folder

    return make


@pytest.fixture
def store() -> TrackingStore:
    return get_store()
