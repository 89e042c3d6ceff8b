"""Fixtures for the sources tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared_servers import serve_folder


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over http://127.0.0.1:<port>/ by a thread: (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as base:
        yield root, base
