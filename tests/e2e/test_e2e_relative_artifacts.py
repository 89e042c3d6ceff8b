"""An experiment whose artifact location is a relative path (stores moved between machines
keep them so; older MLflow wrote them): a run's log and the artifacts its project logs with
the real mlflow client end in one folder, taken from the current folder as MLflow takes it."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mlproj.tracking.base import TrackingStore
from tests.e2e.e2e_support import MakeProject, run_cli

pytestmark = pytest.mark.usefixtures("tracking_store_kind")  # on both local stores

LOG_ARTIFACT = """
import mlflow
open("out.txt", "w").write("made by the project")
mlflow.log_artifact("out.txt")
"""


def _make_location_relative(store: TrackingStore, location: str) -> None:
    uri = store.tracking_uri
    if uri.startswith("sqlite:"):
        with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
            )
        return
    meta = Path(urlparse(uri).path) / "0" / "meta.yaml"
    lines = [
        f"artifact_location: {location}" if line.startswith("artifact_location:") else line
        for line in meta.read_text().splitlines()
    ]
    meta.write_text("\n".join(lines) + "\n")


def test_a_relative_artifact_location_keeps_log_and_artifacts_together(
    make_project: MakeProject, store: TrackingStore, tmp_path: Path
) -> None:
    project = make_project(
        f'name: rel\nentry_points:\n  main:\n    command: "{sys.executable} log_artifact.py"\n',
        log_artifact__py=LOG_ARTIFACT,
    )
    first = run_cli("run", str(project), "-e", "main", cwd=tmp_path)  # makes experiment 0
    assert first.returncode == 0, first.stderr
    _make_location_relative(store, "moved/0")

    done = run_cli("run", str(project), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    runs = store.search_runs(["0"])
    run = max(runs, key=lambda r: r.info.start_time)
    artifacts = tmp_path / "moved" / "0" / run.run_id / "artifacts"
    assert run.info.artifact_uri == artifacts.as_uri()  # stored absolute: one place for all
    assert (artifacts / "out.txt").read_text() == "made by the project"
    assert (artifacts / "mlproj" / "output.log").exists()
    assert not (project / "moved").exists()  # the project's MLflow did not write elsewhere
