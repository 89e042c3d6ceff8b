"""URIs that name local paths (mlproj.locations): file stores, SQLite databases, file: URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.locations import file_uri_to_path, local_store_root, sqlite_database


def test_sqlite_database_relative_absolute_and_not_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_database("sqlite:///mlflow.db") == tmp_path / "mlflow.db"
    assert sqlite_database("sqlite:///sub%20dir/m.db?timeout=5") == tmp_path / "sub dir" / "m.db"
    assert sqlite_database("sqlite:////abs/m.db") == Path("/abs/m.db")
    assert sqlite_database("sqlite+pysqlite:////abs/m.db") == Path("/abs/m.db")
    for not_a_file in ("sqlite://", "sqlite:///:memory:", "sqlite://host/m.db", "file:///x"):
        assert sqlite_database(not_a_file) is None, not_a_file


def test_local_store_root_and_file_uris(tmp_path: Path) -> None:
    assert local_store_root(tmp_path.as_uri()) == tmp_path
    assert local_store_root(str(tmp_path)) == tmp_path
    assert local_store_root("http://h/") is None
    with pytest.raises(ExecutionException, match="must name a local path"):
        local_store_root("file://otherhost/x")
    assert file_uri_to_path(tmp_path.as_uri()) == tmp_path
    assert file_uri_to_path("file://otherhost.invalid/x") is None
