"""A file store written by mlproj, served by a real ``mlflow server`` over it
(``MLFLOW_ALLOW_FILE_STORE=true``), read and written back through its REST API."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mlproj.cli.main import cli
from mlproj.tracking.entities import Metric
from mlproj.tracking.file_store import FileStore
from mlproj.tracking.rest_store import RestStore


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server_factory: Any
) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("file-store-served")
    root = (workdir / "mlruns").as_uri()
    files = FileStore(root)
    exp = files.create_experiment("written-by-mlproj")
    base = int(time.time() * 1000) - 10_000
    done = files.create_run(
        exp,
        run_name="done",
        tags={"mlflow.source.type": "PROJECT", "nested/key": "n"},
        user_id="alice",
        start_time=base,
    )
    files.log_batch(
        done.run_id,
        params={"lr": "0.1", "layers": "3"},
        metrics=[Metric("loss", 1.0 / (i + 1), base + i, i) for i in range(5)]
        + [Metric("odd", math.inf, base, 0)],
    )
    files.set_terminated(done.run_id, "FINISHED", end_time=base + 5_000)
    live = files.create_run(exp, run_name="live", tags={}, user_id="bob", start_time=base + 1_000)
    files.log_batch(live.run_id, params={"lr": "0.2"})
    server = mlflow_server_factory(root, workdir, file_store=True)
    yield {"url": server.url, "files": files, "exp": exp, "done": done.run_id, "live": live.run_id}
    server.stop()


def test_server_reads_what_mlproj_wrote(served: dict[str, Any]) -> None:
    rest = RestStore(served["url"])
    exp = rest.get_experiment_by_name("written-by-mlproj")
    assert exp is not None and exp.experiment_id == served["exp"]
    assert "written-by-mlproj" in {e.name for e in rest.list_experiments()}

    run = rest.get_run(served["done"])
    assert run.info.status == "FINISHED" and run.info.run_name == "done"
    assert run.info.user_id == "alice"
    assert run.params == {"lr": "0.1", "layers": "3"}
    assert run.tags["nested/key"] == "n" and run.tags["mlflow.source.type"] == "PROJECT"
    assert run.metrics["loss"] == pytest.approx(0.2) and run.metrics["odd"] == math.inf
    assert [m.step for m in rest.get_metric_history(served["done"], "loss")] == list(range(5))

    runs = rest.search_runs([served["exp"]])
    assert [r.run_id for r in runs] == [served["live"], served["done"]]
    assert [r.run_id for r in rest.search_runs([served["exp"]], status="RUNNING")] == [
        served["live"]
    ]
    assert [r.run_id for r in rest.search_runs([served["exp"]], params={"lr": "0.1"})] == [
        served["done"]
    ]


def test_writes_through_the_server_land_in_the_file_store(
    served: dict[str, Any], tmp_path: Path
) -> None:
    rest = RestStore(served["url"])
    rest.log_batch(served["live"], tags={"via": "rest"}, metrics=[Metric("acc", 0.9, 1, 0)])
    # The file store's artifact location is a file: URI, so the REST store copies with fsspec.
    log = tmp_path / "output.log"
    log.write_text("via fsspec\n")
    rest.log_artifact(served["live"], log, "mlproj")
    rest.set_terminated(served["live"], "KILLED")

    files: FileStore = served["files"]
    seen = files.get_run(served["live"])
    assert seen.info.status == "KILLED" and seen.tags["via"] == "rest"
    assert seen.metrics == {"acc": 0.9}
    art = files.local_artifact_dir(served["live"])
    assert art is not None and (art / "mlproj" / "output.log").read_text() == "via fsspec\n"

    done = CliRunner().invoke(
        cli, ["runs", "show", served["live"], "--tracking-uri", served["url"], "--json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "KILLED"
    done = CliRunner().invoke(
        cli, ["runs", "logs", served["live"], "--tracking-uri", served["url"]]
    )
    assert done.stdout == "via fsspec\n"
