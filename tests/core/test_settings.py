"""Every MLPROJ_* setting is declared once, documented, and a bad value is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj import settings
from mlproj.errors import ExecutionException
from mlproj.sources.gitcmd import network_timeout
from mlproj.tracking.sqlite_schema import wal_allowed

DOCS = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def test_every_setting_is_in_the_table_of_docs_running() -> None:
    table = DOCS.read_text()
    for setting in settings.ALL:
        assert f"| `{setting.name}` |" in table, setting.name


def test_no_mlproj_variable_is_read_outside_settings() -> None:
    src = Path(settings.__file__).parent
    for path in src.rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text()
        for needle in ('environ.get("MLPROJ_', 'environ["MLPROJ_', 'getenv("MLPROJ_'):
            assert needle not in text, f"{path}: read it through mlproj.settings"


def test_bad_git_timeout_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJ_GIT_TIMEOUT", "soon")
    with pytest.raises(ExecutionException, match=r"MLPROJ_GIT_TIMEOUT='soon' is invalid"):
        network_timeout()
    monkeypatch.setenv("MLPROJ_GIT_TIMEOUT", "120")
    assert network_timeout() == 120.0


def test_sqlite_wal_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLPROJ_SQLITE_WAL", "0")
    assert wal_allowed(tmp_path / "mlflow.db") is False
