"""Latency mlproj adds on Slurm and Ray: a trivial run through ``mlproj run -b slurm|ray``
against the engine's own CLI (``sbatch --wait --wrap``, ``ray job submit``), in the same run,
alternating. Target: mlproj adds at most 0.5 s.

    python benchmarks/bench_engines.py [--repeat 5] [--engines slurm,ray]
                                       [--ray-address http://127.0.0.1:8265]

Two figures per trial, from timestamps the job's command writes itself (``date +%s.%N`` at
its start and as its last action):
- submit-to-start: from the moment the CLI is started to the command's first line;
- end-to-recorded: from the command's last line to the moment the end is known - for the
  engine's CLI when it returns, for mlproj when the run's final status is in the tracking
  store (its end_time) and, second figure, when ``mlproj run`` returns.
Both CLIs are started as fresh processes, so each pays its own start-up (Ray's client import
is seconds). Needs a running Slurm (``.ci/slurm-setup.sh``) / Ray head (``.ci/ray-setup.sh``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_env

MLPROJECT = """name: bench-engines
entry_points:
  main:
    command: "date +%s.%N > {start}; date +%s.%N > {end}"
"""


def _stamp(path: Path) -> float:
    return float(path.read_text().strip())


def _trial_dir(root: Path, name: str, index: int) -> tuple[Path, Path, Path]:
    folder = root / f"{name}-{index}"
    folder.mkdir()
    return folder, folder / "start", folder / "end"


def _run(argv: list[str], cwd: Path | None = None) -> float:
    done = subprocess.run(
        argv, env=bench_env(), cwd=cwd, capture_output=True, text=True, check=False
    )
    returned = time.time()
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    return returned


def _mlproj_trial(root: Path, index: int, backend: str, config: str) -> tuple[float, float, float]:
    folder, start, end = _trial_dir(root, f"mlproj-{backend}", index)
    project = folder / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT.format(start=start, end=end))
    tracking = (root / "mlruns").as_uri()
    argv = [sys.executable, "-m", "mlproj", "run", str(project), "-b", backend, "-c", config]
    argv += ["--env-manager", "local", "--tracking-uri", tracking]
    began = time.time()
    returned = _run(argv)
    recorded = _recorded_end(tracking)
    return _stamp(start) - began, recorded - _stamp(end), returned - _stamp(end)


def _api_trial(
    root: Path, index: int, backend: str, config: dict[str, str]
) -> tuple[float, float, float]:
    """The same through ``mlproj.run`` in this process (imports already paid): what the
    backend itself adds, without the CLI's Python start-up."""
    import mlproj

    folder, start, end = _trial_dir(root, f"api-{backend}", index)
    project = folder / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT.format(start=start, end=end))
    tracking = (root / "mlruns").as_uri()
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    began = time.time()
    mlproj.run(
        str(project),
        backend=backend,
        backend_config=config,
        env_manager="local",
    )
    returned = time.time()
    recorded = _recorded_end(tracking)
    return _stamp(start) - began, recorded - _stamp(end), returned - _stamp(end)


def _recorded_end(tracking_uri: str) -> float:
    """End time (seconds) of the newest run in the store: when mlproj recorded its end."""
    from mlproj.tracking import get_store

    store = get_store(tracking_uri)
    runs = store.search_runs([e.experiment_id for e in store.list_experiments()])
    newest = max(runs, key=lambda r: r.info.start_time or 0)
    assert newest.info.end_time is not None and newest.info.status == "FINISHED"
    return newest.info.end_time / 1000


def _sbatch_trial(root: Path, index: int) -> tuple[float, float]:
    folder, start, end = _trial_dir(root, "sbatch", index)
    command = f"date +%s.%N > {start}; date +%s.%N > {end}"
    began = time.time()
    returned = _run(["sbatch", "--parsable", "--wait", f"--output={folder}/out", "--wrap", command])
    return _stamp(start) - began, returned - _stamp(end)


def _ray_trial(root: Path, index: int, address: str) -> tuple[float, float]:
    folder, start, end = _trial_dir(root, "ray", index)
    project = folder / "project"
    project.mkdir()
    ray = str(Path(sys.executable).with_name("ray"))
    command = f"date +%s.%N > {start}; date +%s.%N > {end}"
    argv = [ray, "job", "submit", "--address", address, "--working-dir", str(project)]
    began = time.time()
    returned = _run([*argv, "--", "bash", "-c", command])
    return _stamp(start) - began, returned - _stamp(end)


def _print(name: str, rows: list[tuple[float, ...]], labels: tuple[str, ...]) -> list[float]:
    medians = []
    for column, label in enumerate(labels):
        values = sorted(r[column] for r in rows)
        median = values[len(values) // 2]
        medians.append(median)
        print(
            f"{name:<22} {label:<26} median {median:7.3f} s  "
            f"(min {values[0]:7.3f}, max {values[-1]:7.3f}, n={len(values)})"
        )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engines", default="slurm,ray")
    parser.add_argument(
        "--ray-address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265")
    )
    args = parser.parse_args()
    engines = args.engines.split(",")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mlproj-bench-engines-") as tmp:
        root = Path(tmp)
        os.environ["MLPROJ_HOME"] = str(root / "home")
        if "slurm" in engines:
            native, ours, api = [], [], []
            for index in range(args.repeat):  # alternating, so load changes hit both
                native.append(_sbatch_trial(root, index))
                ours.append(_mlproj_trial(root, index, "slurm", "{}"))
                api.append(_api_trial(root, index, "slurm", {}))
            print("\n== Slurm (trivial job)")
            base = _print("sbatch --wait --wrap", native, ("submit-to-start", "end-to-return"))
            _print(
                "mlproj.run() in-process",
                api,
                ("submit-to-start", "end-to-recorded", "end-to-return"),
            )
            mine = _print(
                "mlproj run -b slurm", ours, ("submit-to-start", "end-to-recorded", "end-to-return")
            )
            print(
                f"mlproj adds: {mine[0] - base[0]:+.3f} s to start, {mine[1] - base[1]:+.3f} s to "
                f"record the end ({mine[2] - base[1]:+.3f} s to return)"
            )
        if "ray" in engines:
            config = f'{{"address": "{args.ray_address}"}}'
            native, ours, api = [], [], []
            for index in range(args.repeat):
                native.append(_ray_trial(root, index, args.ray_address))
                ours.append(_mlproj_trial(root, index, "ray", config))
                api.append(_api_trial(root, index, "ray", {"address": args.ray_address}))
            print("\n== Ray (trivial job)")
            base = _print("ray job submit", native, ("submit-to-start", "end-to-return"))
            _print(
                "mlproj.run() in-process",
                api,
                ("submit-to-start", "end-to-recorded", "end-to-return"),
            )
            mine = _print(
                "mlproj run -b ray", ours, ("submit-to-start", "end-to-recorded", "end-to-return")
            )
            print(
                f"mlproj adds: {mine[0] - base[0]:+.3f} s to start, {mine[1] - base[1]:+.3f} s to "
                f"record the end ({mine[2] - base[1]:+.3f} s to return)"
            )
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
