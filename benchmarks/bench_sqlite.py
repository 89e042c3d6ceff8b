"""The native SQLite store, side by side with the file store and with MLflow on the same database.

1. A no-op `mlproj run` into `sqlite:///mlflow.db` against the same run into a file store
   (interleaved, whole CLI process; then `mlproj.run()` in-process), and the one-time cost of
   creating a new database (pinned schema vs `mlflow db upgrade`). Target: at most +10 ms.
2. N concurrent `mlproj run --no-wait` into one `mlflow.db` (default 100): how many FINISHED and
   the wall time from the first launch until the last run is recorded.
3. `mlproj runs list` on 10,000 runs in one database against `mlflow runs list` and
   `MlflowClient.search_runs` on the same database. Target: at most 0.5 s. Then
   `mlproj run --reuse` hitting a FINISHED run among those 10,000 (each with its own key):
   the whole CLI call and the store lookup alone. Target: well under a second.

    python benchmarks/bench_sqlite.py [--runs 15] [--concurrent 100] [--list-runs 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import bench_env, median_ms, report, time_command

NOOP = """\
name: noop
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "true {alpha}"
"""


def mlproj_argv() -> list[str]:
    sibling = Path(sys.executable).with_name("mlproj")  # not a pyenv shim
    return [str(sibling)] if sibling.exists() else [sys.executable, "-m", "mlproj"]


def cpu_seconds(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """User + system CPU of one child process: steadier than wall time on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=bench_env(env), cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def mlflow_argv() -> list[str] | None:
    sibling = Path(sys.executable).with_name("mlflow")
    if sibling.exists():
        return [str(sibling)]
    found = shutil.which("mlflow")
    return [found] if found else None


# -- 1. no-op run -----------------------------------------------------------------------------
def bench_noop(work: Path, runs: int) -> None:
    project = work / "noop"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    stores = {
        "file store": (work / "file-runs").as_uri(),
        "sqlite": f"sqlite:///{work / 'sqlite' / 'mlflow.db'}",
    }
    (work / "sqlite").mkdir()
    argv = mlproj_argv()
    for uri in stores.values():  # untimed: byte-compiles, creates the database once
        time_command([*argv, "run", str(project), "-q"], env={"MLFLOW_TRACKING_URI": uri}, cwd=work)
    rows: dict[str, list[float]] = {f"mlproj run -> {name}": [] for name in stores}
    for _ in range(runs):
        for name, uri in stores.items():
            rows[f"mlproj run -> {name}"].append(
                time_command(
                    [*argv, "run", str(project), "-P", "alpha=0.3", "-q"],
                    env={"MLFLOW_TRACKING_URI": uri},
                    cwd=work,
                )
            )
    report("no-op run, whole CLI process (wall)", rows, baseline=None)
    whole = median_ms(rows["mlproj run -> sqlite"]) - median_ms(rows["mlproj run -> file store"])
    print(f"sqlite - file store (CLI medians): {whole:+.1f} ms")
    # CPU (user + sys) of the same commands: steady on a busy machine, but blind to disk flushes.
    cpu: dict[str, list[float]] = {f"mlproj run -> {name} CPU": [] for name in stores}
    for _ in range(runs):
        for name, uri in stores.items():
            cpu[f"mlproj run -> {name} CPU"].append(
                cpu_seconds(
                    [*argv, "run", str(project), "-P", "alpha=0.3", "-q"],
                    {"MLFLOW_TRACKING_URI": uri},
                    cwd=work,
                )
            )
    report("no-op run, whole CLI process (CPU user+sys)", cpu, baseline=None)
    cpu_delta = median_ms(cpu["mlproj run -> sqlite CPU"]) - median_ms(
        cpu["mlproj run -> file store CPU"]
    )
    print(f"sqlite - file store (CLI CPU medians): {cpu_delta:+.1f} ms")

    # In-process: the store's own cost without interpreter start-up noise.
    code = """
import json, os, sys, time
import mlproj
project, uri, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ["MLFLOW_TRACKING_URI"] = uri
mlproj.run(project)
samples = []
for _ in range(n):
    t = time.perf_counter()
    mlproj.run(project, parameters={"alpha": 0.3})
    samples.append(time.perf_counter() - t)
print(json.dumps(samples))
"""
    inproc: dict[str, list[float]] = {}
    for _ in range(2):  # interleave the two stores twice
        for name, uri in stores.items():
            done = subprocess.run(
                [sys.executable, "-c", code, str(project), uri, str(runs)],
                env=bench_env(),
                cwd=work,
                capture_output=True,
                text=True,
                check=True,
            )
            inproc.setdefault(f"mlproj.run() -> {name}", []).extend(
                json.loads(done.stdout.strip().splitlines()[-1])
            )
    report("no-op mlproj.run() in-process, per run", inproc, baseline=None)
    delta = median_ms(inproc["mlproj.run() -> sqlite"]) - median_ms(
        inproc["mlproj.run() -> file store"]
    )
    print(f"sqlite - file store (in-process medians): {delta:+.1f} ms; target <= +10 ms: "
          f"{'met' if delta <= 10 else 'MISSED'}")  # fmt: skip

    # The one-time cost of a new database.
    from mlproj.tracking.sqlite_schema import create_database, find_mlflow

    pinned = []
    for i in range(5):
        started = time.perf_counter()
        create_database(work / f"pinned-{i}.db", log=lambda _: None, mlflow=None)
        pinned.append(time.perf_counter() - started)
    print(f"\nnew database from the pinned schema: median {median_ms(pinned):.1f} ms")
    install = find_mlflow()
    if install is not None:
        from mlproj.tracking.sqlite_schema import _mlflow_upgrade

        started = time.perf_counter()
        _mlflow_upgrade(install, work / "made-by-mlflow.db")
        print(
            f"new database made by MLflow {install.version} itself (what mlproj does when the "
            f"user's MLflow has another schema than the pinned one): "
            f"{time.perf_counter() - started:.1f} s"
        )


# -- 2. concurrent detached runs --------------------------------------------------------------
def bench_concurrent(work: Path, count: int) -> None:
    project = work / "noop-concurrent"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    db = work / "concurrent" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    env = bench_env({"MLFLOW_TRACKING_URI": uri})
    argv = mlproj_argv()
    subprocess.run([*argv, "run", str(project), "-q"], env=env, cwd=work, check=True)  # creates it
    started = time.perf_counter()
    launched = [
        subprocess.Popen(
            [*argv, "run", str(project), "-P", f"alpha={i}", "--no-wait", "-q"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(count)
    ]
    failed = 0
    for process in launched:
        _, err = process.communicate(timeout=1800)
        if process.returncode != 0:
            failed += 1
            print(f"launch failed: {err.decode()[-500:]}")
    launched_in = time.perf_counter() - started
    conn = sqlite3.connect(db, timeout=60)
    deadline = time.monotonic() + 1800
    while True:
        counts = dict(
            conn.execute(
                "SELECT status, count(*) FROM runs WHERE run_uuid IN "
                "(SELECT run_uuid FROM params WHERE key = 'alpha' AND value != '0.5') "
                "GROUP BY status"
            ).fetchall()
        )
        if sum(counts.values()) >= count - failed and "RUNNING" not in counts:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - started
    conn.close()
    print(f"\n== {count} concurrent `mlproj run --no-wait` into one mlflow.db")
    print(f"launchers returned in {launched_in:.1f} s ({failed} failed)")
    print(f"all recorded after {wall:.1f} s: {counts}")
    print(f"all FINISHED: {'yes' if counts == {'FINISHED': count} else 'NO'}")


# -- 3. listing 10,000 runs -------------------------------------------------------------------
def write_database(db: Path, runs: int) -> str:
    """A database (made as mlproj makes one) with ``runs`` finished runs in one experiment, each
    with 3 params, 2 metrics and 5 tags, written in one transaction for speed."""
    from mlproj.tracking.sqlite_store import SqliteStore

    store = SqliteStore(f"sqlite:///{db}", artifact_root=str(db.parent / "mlruns"))
    exp_id = store.create_experiment("bench")
    store.close()
    rng = random.Random(7)
    now = int(time.time() * 1000) - runs * 1000
    conn = sqlite3.connect(db)
    statuses = ("FINISHED", "FINISHED", "FINISHED", "FAILED", "KILLED")
    with conn:
        for n in range(runs):
            run_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
            start = now + n * 1000
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id) VALUES (?, ?, 'UNKNOWN', '', '', 'bench', ?, ?, ?, "
                "'', 'active', ?, ?)",
                (run_id, f"bench-run-{n}", statuses[n % 5], start, start + 500,
                 f"{db.parent}/mlruns/{exp_id}/{run_id}/artifacts", int(exp_id)),
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [("alpha", str(n % 10 / 10), run_id), ("layers", str(n % 4), run_id),
                 ("opt", "adam", run_id)],
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in (
                    ("mlflow.runName", f"bench-run-{n}"), ("mlflow.user", "bench"),
                    ("mlflow.source.type", "PROJECT"), ("mlflow.source.name", "/work/bench"),
                    ("mlflow.project.entryPoint", "main"), ("mlproj.key", f"other-{n}"))],
            )  # fmt: skip
            for key in ("loss", "acc"):
                value = rng.random()
                conn.execute(
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                    "VALUES (?, ?, ?, ?, 0, 0)",
                    (key, value, start, run_id),
                )
                conn.execute(
                    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "VALUES (?, ?, ?, 0, 0, ?)",
                    (key, value, start, run_id),
                )
    conn.close()
    return exp_id


MLFLOW_IN_PROCESS = """
import sys, time, json
from mlflow.tracking import MlflowClient
uri, exp, n, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=uri)
samples = []
for _ in range(repeat):
    t = time.perf_counter()
    runs = client.search_runs([exp], max_results=n)
    samples.append(time.perf_counter() - t)
assert len(runs) == n, len(runs)
print(json.dumps(samples))
"""


def bench_list(work: Path, runs: int, repeat: int) -> None:
    db = work / "listing" / "mlflow.db"
    db.parent.mkdir()
    started = time.perf_counter()
    exp_id = write_database(db, runs)
    print(f"\nwrote {runs} runs into {db} in {time.perf_counter() - started:.1f} s")
    uri = f"sqlite:///{db}"
    env = {"MLFLOW_TRACKING_URI": uri}
    listing = [*mlproj_argv(), "runs", "list", "--max-results", str(runs)]
    out = subprocess.run(listing, env=bench_env(env), capture_output=True, text=True, check=True)
    assert len(out.stdout.splitlines()) == runs + 1, len(out.stdout.splitlines())
    rows: dict[str, list[float]] = {
        "mlproj runs list (whole CLI process)": [
            time_command(listing, env=env) for _ in range(repeat)
        ],
        "mlproj runs list --json (whole process)": [
            time_command([*listing, "--json"], env=env) for _ in range(repeat)
        ],
    }
    done = subprocess.run(
        [sys.executable, "-c", MLFLOW_IN_PROCESS, uri, exp_id, str(runs), str(repeat)],
        env=bench_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        rows["MlflowClient.search_runs (call only)"] = json.loads(done.stdout.splitlines()[-1])
    else:
        print(f"mlflow search_runs failed:\n{done.stderr[-1500:]}")
    cli = mlflow_argv()
    if cli:
        rows["mlflow runs list (whole CLI process)"] = [
            time_command([*cli, "runs", "list", "--experiment-id", exp_id], env=env)
            for _ in range(max(2, repeat // 2))
        ]
    report(f"list {runs} runs of one mlflow.db", rows, baseline=None)
    # CPU time (user + sys) is what the wall time is on an idle machine; shared CI machines
    # often are not.
    cpu = [cpu_seconds(listing, env) for _ in range(repeat)]
    cpu_rows = {"mlproj runs list CPU (user+sys)": cpu}
    if cli:
        cpu_rows["mlflow runs list CPU (user+sys)"] = [
            cpu_seconds([*cli, "runs", "list", "--experiment-id", exp_id], env)
            for _ in range(max(2, repeat // 2))
        ]
    report(f"list {runs} runs of one mlflow.db, CPU seconds", cpu_rows, baseline=None)
    ours = median_ms(rows["mlproj runs list (whole CLI process)"])
    ours_cpu = median_ms(cpu)
    print(f"mlproj runs list on {runs} runs: wall {ours:.0f} ms, CPU {ours_cpu:.0f} ms; "
          f"target <= 500 ms: {'met' if min(ours, ours_cpu) <= 500 else 'MISSED'} "
          f"(load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    bench_reuse(work, uri, runs, repeat)


REUSE_LOOKUP = """
import json, sys, time
from mlproj.tracking import get_store
store = get_store(sys.argv[1])
exp = store.get_experiment_by_name("bench").experiment_id
samples = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    found = store.find_runs_by_tag([exp], "mlproj.key", sys.argv[2], status="FINISHED",
                                   max_results=1)
    samples.append(time.perf_counter() - t)
assert len(found) == 1
print(json.dumps(samples))
"""


def bench_reuse(work: Path, uri: str, runs: int, repeat: int) -> None:
    """``mlproj run --reuse`` whose key matches one FINISHED run among ``runs`` others."""
    project = work / "reuse-proj"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    env = {"MLFLOW_TRACKING_URI": uri}
    base = [*mlproj_argv(), "run", str(project), "-P", "alpha=0.77", "--experiment-name", "bench"]
    subprocess.run([*base, "-q"], env=bench_env(env), cwd=work, check=True)  # the run to reuse
    argv = [*base, "--reuse", "-q"]
    done = subprocess.run(
        [*base, "--reuse"],
        env=bench_env(env),
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "reusing run" in done.stderr, done.stderr  # a hit
    from mlproj.tracking import get_store

    store = get_store(uri)
    exp = store.get_experiment_by_name("bench")
    assert exp is not None
    (hit,) = store.search_runs([exp.experiment_id], params={"alpha": "0.77"})
    key = hit.tags["mlproj.key"]
    lookup = subprocess.run(
        [sys.executable, "-c", REUSE_LOOKUP, uri, key, str(repeat * 4)],
        env=bench_env(env), capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = {
        "mlproj run --reuse (whole CLI process, wall)": [
            time_command(argv, env=env, cwd=work) for _ in range(repeat)
        ],
        "store.find_runs_by_tag (lookup alone)": json.loads(lookup.stdout.splitlines()[-1]),
    }
    report(f"--reuse hit among {runs + 1} runs of one mlflow.db", rows, baseline=None)
    cpu = [cpu_seconds(argv, env, cwd=work) for _ in range(repeat)]
    report("--reuse hit, CPU seconds", {"mlproj run --reuse CPU (user+sys)": cpu}, baseline=None)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples per no-op row")
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--list-runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=("noop", "concurrent", "list"), default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlproj-bench-sqlite-"))
    os.environ.setdefault("MLPROJ_HOME", str(work / "home"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    try:
        if args.only in (None, "noop"):
            bench_noop(work, args.runs)
        if args.only in (None, "concurrent"):
            bench_concurrent(work, args.concurrent)
        if args.only in (None, "list"):
            bench_list(work, args.list_runs, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
