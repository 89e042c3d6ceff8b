"""`mlproj ui` on a SQLite store serves with an MLflow that knows the database's schema.

MLflow refuses a database at a schema revision it does not know. The quick start's example
runs its own MLflow, which would upgrade ./mlflow.db if it were newer than the UI's: the
example pins the MLflow whose schema mlproj writes, and the UI never starts an MLflow that
would refuse the database."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

import pytest

from mlproj.cli.ui import choose_mlflow, database_revision
from mlproj.errors import ExecutionException
from mlproj.tracking.sqlite_schema import PINNED_REVISION, SCHEMA_FILE
from tests.cli.cli_support import EXAMPLE, run_cli

UNKNOWN = "0123456789ab"  # a revision no MLflow has


def _database(tmp_path: Path, revision: str | None = None) -> str:
    """An mlflow.db made by mlproj (a real run), at ``revision`` if given."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # From tmp_path: a new database keeps its artifacts in ./mlruns of the current folder.
    done = run_cli(
        "run", str(EXAMPLE), "--env-manager", "local", "-q", cwd=tmp_path, MLFLOW_TRACKING_URI=uri
    )
    assert done.returncode == 0, done.stderr
    if revision is not None:
        with sqlite3.connect(tmp_path / "mlflow.db") as conn:
            conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    return uri


def test_the_database_revision_is_read(tmp_path: Path) -> None:
    uri = _database(tmp_path)
    assert database_revision(uri) == PINNED_REVISION
    assert database_revision(f"sqlite:///{tmp_path / 'none.db'}") is None  # not made yet
    assert database_revision((tmp_path / "mlruns").as_uri()) is None  # not SQLite


def test_the_installed_mlflow_serves_a_schema_it_knows() -> None:
    # The test extra's MLflow is the one whose schema mlproj pins.
    assert choose_mlflow(None, PINNED_REVISION) == ([sys.executable, "-m", "mlflow"], None)
    assert choose_mlflow(None, None) == ([sys.executable, "-m", "mlflow"], None)
    argv, note = choose_mlflow("mlflow==3.17.2", UNKNOWN)  # asked for: taken as it is
    assert argv[1:] == ["tool", "run", "--from", "mlflow==3.17.2", "mlflow"] and note is None


def test_no_mlflow_knows_the_schema_one_line_and_no_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")  # the uv tool env may be cached; nothing downloaded
    with pytest.raises(ExecutionException, match=f"revision {UNKNOWN}"):
        choose_mlflow(None, UNKNOWN)
    uri = _database(tmp_path, UNKNOWN)
    done = run_cli("ui", "--tracking-uri", uri, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("mlproj: error: No MLflow here knows the schema of this database")
    assert "mlproj ui --mlflow 'mlflow==VERSION'" in lines[-1]
    assert "Traceback" not in done.stderr and "out-of-date" not in done.stderr  # no server ran
    assert done.stdout == ""  # no URL: nothing serves


def test_the_quick_start_example_pins_the_mlflow_whose_schema_mlproj_writes() -> None:
    header = SCHEMA_FILE.read_text(encoding="utf-8").split("CREATE", 1)[0]
    version = re.search(r"\(MLflow ([\d.]+)\)", header)
    assert version, header
    env = (EXAMPLE / "python_env.yaml").read_text(encoding="utf-8")
    assert f"  - mlflow-skinny=={version.group(1)}\n" in env
