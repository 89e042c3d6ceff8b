"""FileStore under concurrent writers: separate processes, one store, nothing lost or doubled."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from mlproj.tracking.file_store import FileStore
from tests.tracking.tracking_mlflow_child import run_mlflow

PROCESSES = 6
RUNS_EACH = 25

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mlproj.tracking.entities import Metric
    from mlproj.tracking.file_store import FileStore

    uri, index, shared_run, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    while not go.exists():  # start together, so the experiment creations really race
        time.sleep(0.001)
    store = FileStore(uri)
    experiment_id = store.create_experiment("shared")
    own = store.create_experiment(f"own-{index}")
    for n in range(RUNS_EACH):
        info = store.create_run(
            experiment_id if n % 5 else own,
            run_name=f"p{index}-r{n}",
            tags={"mlflow.user": "worker", "proc/index": str(index)},
            user_id="worker",
        )
        store.log_batch(
            info.run_id,
            params={"proc": str(index), "n": str(n)},
            metrics=[Metric("loss", 1.0 / (n + 1), 1_795_000_000_000 + n, n)],
        )
        store.set_terminated(info.run_id, "FINISHED" if n % 2 else "FAILED")
        # Everyone also writes into one run at the same time.
        store.log_batch(
            shared_run,
            params={"same": "value"},
            tags={f"from/{index}": str(n), "mlflow.runName": f"last-writer-{index}"},
            metrics=[Metric("shared", float(index), 1_795_000_000_000 + n, index * 100 + n)],
        )
    """
).replace("RUNS_EACH", str(RUNS_EACH))


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "mlruns"
    store = FileStore(root.as_uri())
    shared_run = store.create_run("0", run_name="shared", tags={}, user_id="u").run_id
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store.tracking_uri, str(i), shared_run, str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    go.touch()
    for worker in workers:
        _, stderr = worker.communicate(timeout=240)
        assert worker.returncode == 0, stderr[-3000:]

    # Exactly one experiment per name, checked on disk, not through the store.
    names = [
        yaml.safe_load((p / "meta.yaml").read_text())["name"]
        for p in root.iterdir()
        if (p / "meta.yaml").is_file()
    ]
    assert sorted(names) == sorted(["Default", "shared"] + [f"own-{i}" for i in range(PROCESSES)])
    assert not list(root.rglob(".tmp-*"))  # no staging folder or temporary file left

    shared = store.get_experiment_by_name("shared")
    assert shared is not None
    own_ids = []
    for i in range(PROCESSES):
        own = store.get_experiment_by_name(f"own-{i}")
        assert own is not None
        own_ids.append(own.experiment_id)
    runs = store.search_runs([shared.experiment_id, *own_ids], max_results=10_000)
    assert len(runs) == PROCESSES * RUNS_EACH
    seen = set()
    for run in runs:
        index, n = int(run.params["proc"]), int(run.params["n"])
        seen.add((index, n))
        assert run.info.run_name == f"p{index}-r{n}"
        assert run.info.status == ("FINISHED" if n % 2 else "FAILED")
        assert run.tags["proc/index"] == str(index)
        assert run.metrics == {"loss": 1.0 / (n + 1)}
    assert len(seen) == PROCESSES * RUNS_EACH

    together = store.get_run(shared_run)
    assert together.params == {"same": "value"}
    assert {k: v for k, v in together.tags.items() if k.startswith("from/")} == {
        f"from/{i}": str(RUNS_EACH - 1) for i in range(PROCESSES)
    }
    history = store.get_metric_history(shared_run, "shared")
    assert sorted((m.value, m.step) for m in history) == sorted(
        (float(i), i * 100 + n) for i in range(PROCESSES) for n in range(RUNS_EACH)
    )
    assert together.info.run_name == together.tags["mlflow.runName"]
    assert together.info.run_name.startswith("last-writer-")

    # And MLflow itself sees the same store.
    seen_by_mlflow = run_mlflow(
        """
        client = MlflowClient()
        ids = sys.argv[1:]
        names = sorted(e.name for e in client.search_experiments())
        runs = client.search_runs(ids, max_results=1000)
        proc3 = client.search_runs(ids, filter_string="params.proc = '3'")
        print(json.dumps({"names": names, "runs": len(runs), "proc3": len(proc3),
                          "statuses": sorted({r.info.status for r in runs})}))
        """,
        store.tracking_uri,
        shared.experiment_id,
        *own_ids,
    )
    assert seen_by_mlflow == {
        "names": sorted(names),
        "runs": PROCESSES * RUNS_EACH,
        "proc3": RUNS_EACH,
        "statuses": ["FAILED", "FINISHED"],
    }
