"""Listing 10,000 runs: `mlproj runs list` vs MLflow's `MlflowClient().search_runs`.

Writes a file store (the MLflow layout, written directly for speed) with N runs in 4
experiments, each run with 3 params, 2 metrics and 5 tags, then times:

* `mlproj runs list --max-results N` as a whole CLI process (Python start-up, imports, reading
  the store, printing the table to a pipe);
* MLflow 3's `MlflowClient(file:///...).search_runs(all experiments, max_results=N)`: the call
  alone, in a process where mlflow is already imported (MLFLOW_ALLOW_FILE_STORE=true);
* the same MLflow search as a whole process (`python -c "import mlflow; ..."`), for reference.

    python benchmarks/bench_runs_list.py [--runs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import median_ms, report, time_command

EXPERIMENTS = 4


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """User + system CPU of one child process: steadier than wall time on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_store(root: Path, runs: int) -> list[str]:
    """The MLflow file-store layout with ``runs`` runs; returns the experiment ids."""
    rng = random.Random(7)
    now = int(time.time() * 1000) - runs * 1000
    exp_ids = [str(100000 + i) for i in range(EXPERIMENTS)]
    for i, exp_id in enumerate(exp_ids):
        folder = root / exp_id
        folder.mkdir(parents=True)
        (folder / "meta.yaml").write_text(
            f"artifact_location: {folder.as_uri()}\ncreation_time: {now}\n"
            f"experiment_id: '{exp_id}'\nlast_update_time: {now}\nlifecycle_stage: active\n"
            f"name: bench-{i}\n"
        )
    statuses = (3, 3, 3, 4, 5)
    for n in range(runs):
        exp_id = exp_ids[n % EXPERIMENTS]
        run_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        run = root / exp_id / run_id
        for sub in ("params", "metrics", "artifacts", "tags"):
            (run / sub).mkdir(parents=True)
        start = now + n * 1000
        status = statuses[n % len(statuses)]
        (run / "meta.yaml").write_text(
            f"artifact_uri: {(run / 'artifacts').as_uri()}\nend_time: {start + 500}\n"
            f"entry_point_name: ''\nexperiment_id: '{exp_id}'\nlifecycle_stage: active\n"
            f"run_id: {run_id}\nrun_name: bench-run-{n}\nrun_uuid: {run_id}\nsource_name: ''\n"
            f"source_type: 4\nsource_version: ''\nstart_time: {start}\nstatus: {status}\n"
            f"tags: []\nuser_id: bench\n"
        )
        for key, value in (("alpha", str(n % 10 / 10)), ("layers", str(n % 4)), ("opt", "adam")):
            (run / "params" / key).write_text(value)
        for key in ("loss", "acc"):
            (run / "metrics" / key).write_text(f"{start} {rng.random()} 0\n")
        tags = {
            "mlflow.runName": f"bench-run-{n}",
            "mlflow.user": "bench",
            "mlflow.source.type": "PROJECT",
            "mlflow.source.name": "/work/projects/bench",
            "mlflow.project.entryPoint": "main",
        }
        for key, value in tags.items():
            (run / "tags" / key).write_text(value)
    return exp_ids


MLFLOW_IN_PROCESS = """
import sys, time, json
from mlflow.tracking import MlflowClient
uri, n, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=uri)
ids = [e.experiment_id for e in client.search_experiments()]
samples = []
for _ in range(repeat):
    t = time.perf_counter()
    runs = client.search_runs(ids, max_results=n)
    samples.append(time.perf_counter() - t)
assert len(runs) == n, len(runs)
print(json.dumps(samples))
"""

MLFLOW_WHOLE = (
    "import sys; from mlflow.tracking import MlflowClient; c = MlflowClient(sys.argv[1]); "
    "ids = [e.experiment_id for e in c.search_experiments()]; "
    "assert len(c.search_runs(ids, max_results=int(sys.argv[2]))) == int(sys.argv[2])"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-runs-list-"))
    try:
        root = workdir / "mlruns"
        started = time.perf_counter()
        write_store(root, args.runs)
        print(f"wrote {args.runs} runs in {time.perf_counter() - started:.1f} s under {root}")
        uri = root.as_uri()
        env = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_TRACKING_URI": uri}
        mlproj = shutil.which("mlproj")
        argv = [mlproj] if mlproj else [sys.executable, "-m", "mlproj"]
        listing = [*argv, "runs", "list", "--max-results", str(args.runs)]

        # Check the listing is complete before timing it: header + one line per run.
        out = subprocess.run(
            listing, env={**os.environ, **env}, capture_output=True, text=True, check=True
        ).stdout
        assert len(out.splitlines()) == args.runs + 1, len(out.splitlines())
        json_out = subprocess.run(
            [*listing, "--json"], env={**os.environ, **env}, capture_output=True, check=True
        ).stdout
        assert json_out.count(b'"run_id"') == args.runs

        rows: dict[str, list[float]] = {}
        rows["mlproj runs list (whole CLI process)"] = [
            time_command(listing, env=env) for _ in range(args.repeat)
        ]
        rows["mlproj runs list --json (whole process)"] = [
            time_command([*listing, "--json"], env=env) for _ in range(args.repeat)
        ]
        done = subprocess.run(
            [sys.executable, "-c", MLFLOW_IN_PROCESS, uri, str(args.runs), str(args.repeat)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"mlflow search_runs failed:\n{done.stderr[-2000:]}")
        import json

        rows["MlflowClient.search_runs (call only)"] = json.loads(done.stdout.splitlines()[-1])
        rows["MlflowClient.search_runs (whole process)"] = [
            time_command([sys.executable, "-c", MLFLOW_WHOLE, uri, str(args.runs)], env=env)
            for _ in range(max(2, args.repeat // 2))
        ]
        report(
            f"list {args.runs} runs of a file store",
            rows,
            baseline="MlflowClient.search_runs (call only)",
        )
        cpu = [cpu_seconds(listing, env) for _ in range(args.repeat)]
        print(
            f"\nmlproj runs list CPU (user+sys) median {median_ms(cpu):.0f} ms; "
            f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        ours = median_ms(rows["mlproj runs list (whole CLI process)"])
        theirs = median_ms(rows["MlflowClient.search_runs (call only)"])
        print(
            f"\nmlproj whole CLI {ours:.0f} ms vs MLflow search_runs call {theirs:.0f} ms: "
            f"ratio {theirs / ours:.1f}x; target < 1000 ms: {'met' if ours < 1000 else 'MISSED'}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
