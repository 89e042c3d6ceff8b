"""URI parsing and classification (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.sources.uris import parse_project_uri


def test_classification(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (tmp_path / "p.tar.gz").write_bytes(b"")
    assert parse_project_uri(str(folder)).kind == "local"
    assert parse_project_uri(f'"{folder}"').kind == "local"
    assert parse_project_uri(folder.as_uri()).kind == "local"
    assert parse_project_uri(str(tmp_path / "p.tar.gz")).kind == "archive"
    assert parse_project_uri((tmp_path / "p.tar.gz").as_uri()).kind == "archive"
    assert parse_project_uri("https://h/x/p.ZIP").kind == "archive"
    assert parse_project_uri("https://h/org/repo").kind == "git"
    assert parse_project_uri("git@github.com:org/repo.git#a/b").kind == "git"
    assert parse_project_uri("file:///no/such/repo.git").kind == "git"
    parsed = parse_project_uri("https://h/org/repo.git#models/v1.2/./")
    assert parsed.base == "https://h/org/repo.git"
    assert parsed.subdir == "models/v1.2"


def test_rejections(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match="does not exist"):
        parse_project_uri(str(tmp_path / "nothing"))
    with pytest.raises(ExecutionException, match="is empty"):
        parse_project_uri("  ")
    with pytest.raises(ExecutionException, match="points outside"):
        parse_project_uri("https://h/r.git#a/../../b")
    with pytest.raises(ExecutionException, match="must point to this machine"):
        parse_project_uri("file://otherhost/share/proj")
