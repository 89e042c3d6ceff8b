"""Latency mlproj adds on Slurm and Ray: a trivial run through ``mlproj run -b slurm|ray``
against the engine's own CLI (``sbatch --wait --wrap``, ``ray job submit``), in the same run,
alternating, with the figures side by side and their differences. Target: mlproj adds at most
0.5 s (issue 13).

    python benchmarks/bench_engines.py [--repeat 10] [--engines slurm,ray] [--job-seconds 0]
                                       [--ray-address http://127.0.0.1:8265]

Timestamps per trial, all on this host's clock:
- ``began``: the CLI process is started;
- ``handed``: the engine got the job - for Slurm when ``sbatch`` is executed (a two-line
  ``sbatch`` wrapper first on PATH notes the time, for both sides; it also notes the CPU
  seconds its parent, the mlproj process, had used until then), for Ray the job's
  ``start_time`` in Ray's own JobDetails (when the submission reached the job API);
- ``start`` / ``end``: the job's command writes ``date +%s.%N`` as its first and last action
  (``--job-seconds N`` sleeps in between);
- ``recorded``: the run's end_time in the tracking store (mlproj only);
- ``returned``: the CLI process exited.

So submit-to-start = start - began splits into "before the engine" (handed - began: the CLI's
own start-up and work, what mlproj can change) and "in the engine" (start - handed: the
engine's scheduling, the same for both sides but noisy: Slurm takes 0.1 to 1 s per job).
End-to-recorded = recorded - end for mlproj, returned - end for the engine's CLI (that is when
the engine's CLI tells its user). CPU seconds are those of each CLI process and its children.
Needs a running Slurm (``.ci/slurm-setup.sh``) / Ray head (``.ci/ray-setup.sh``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_env

COMMAND = "date +%s.%N > {start}; {sleep}date +%s.%N > {end}"
MLPROJECT = 'name: bench-engines\nentry_points:\n  main:\n    command: "{command}"\n'
# Notes when sbatch is executed and how much CPU its parent had used: utime + stime, fields
# 14 and 15 of /proc/PID/stat, in clock ticks (the name field has no spaces here: python).
SBATCH_WRAPPER = """#!/bin/sh
echo "$(date +%s.%N) $(cut -d' ' -f14,15 /proc/$PPID/stat)" >> "$MLPROJ_BENCH_SBATCH_LOG"
exec {sbatch} "$@"
"""


@dataclass
class Trial:
    began: float
    handed: float
    start: float
    end: float
    returned: float
    cpu: float  # CPU seconds of the CLI process and its children
    recorded: float | None = None
    cpu_before_engine: float | None = None  # CPU seconds of the mlproj process until sbatch

    def figures(self) -> dict[str, float]:
        out = {
            "submit-to-start": self.start - self.began,
            "  before the engine": self.handed - self.began,
            "  in the engine": self.start - self.handed,
            "end-to-recorded": (self.recorded or self.returned) - self.end,
            "end-to-return": self.returned - self.end,
            "CPU s of the CLI": self.cpu,
        }
        if self.cpu_before_engine is not None:
            out["  CPU s before sbatch"] = self.cpu_before_engine
        return out


@dataclass
class Side:
    name: str
    trials: list[Trial] = field(default_factory=list)

    def medians(self) -> dict[str, float]:
        rows = [t.figures() for t in self.trials]
        return {k: statistics.median(r[k] for r in rows) for k in rows[0]}

    def spread(self, key: str) -> tuple[float, float]:
        values = [t.figures()[key] for t in self.trials]
        return min(values), max(values)


def _stamp(path: Path) -> float:
    return float(path.read_text().strip())


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(began, returned, CPU seconds) of one command that must succeed."""
    cpu = _cpu_children()
    began = time.time()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    returned = time.time()
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    return began, returned, _cpu_children() - cpu


class Bench:
    def __init__(self, root: Path, job_seconds: float) -> None:
        self.root = root
        self.job_seconds = job_seconds
        self.tracking = (root / "mlruns").as_uri()
        self.count = 0
        self.sbatch_log = root / "sbatch-calls"
        wrapper_dir = root / "bin"
        wrapper_dir.mkdir()
        real = shutil.which("sbatch")
        if real:
            wrapper = wrapper_dir / "sbatch"
            wrapper.write_text(SBATCH_WRAPPER.format(sbatch=real))
            wrapper.chmod(0o755)
        self.env = bench_env(
            {
                "PATH": f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}",
                "MLPROJ_BENCH_SBATCH_LOG": str(self.sbatch_log),
                "MLPROJ_HOME": str(root / "home"),
                "MLFLOW_TRACKING_URI": self.tracking,
            }
        )
        self.ticks = os.sysconf("SC_CLK_TCK")

    def job(self) -> tuple[Path, Path, Path, str]:
        """A fresh folder, its start/end stamp files and the command writing them."""
        self.count += 1
        folder = self.root / f"trial-{self.count}"
        (folder / "project").mkdir(parents=True)
        start, end = folder / "start", folder / "end"
        sleep = f"sleep {self.job_seconds:g}; " if self.job_seconds else ""
        command = COMMAND.format(start=start, end=end, sleep=sleep)
        (folder / "project" / "MLproject").write_text(MLPROJECT.format(command=command))
        return folder, start, end, command

    def sbatch_call(self) -> tuple[float, float]:
        """(time, CPU seconds of the caller) of the last sbatch execution."""
        stamp, utime, stime = self.sbatch_log.read_text().splitlines()[-1].split()
        return float(stamp), (int(utime) + int(stime)) / self.ticks

    def recorded_end(self) -> float:
        """End time (seconds) of the newest run in the store: when mlproj recorded its end."""
        from mlproj.tracking import get_store

        store = get_store(self.tracking)
        runs = store.search_runs([e.experiment_id for e in store.list_experiments()])
        newest = max(runs, key=lambda r: r.info.start_time or 0)
        assert newest.info.end_time is not None and newest.info.status == "FINISHED"
        return newest.info.end_time / 1000

    def newest_run_id(self) -> str:
        from mlproj.tracking import get_store

        store = get_store(self.tracking)
        runs = store.search_runs([e.experiment_id for e in store.list_experiments()])
        return max(runs, key=lambda r: r.info.start_time or 0).info.run_id

    # -- Slurm -----------------------------------------------------------------------------
    def sbatch(self) -> Trial:
        folder, start, end, command = self.job()
        argv = ["sbatch", "--parsable", "--wait", f"--output={folder}/out", "--wrap", command]
        began, returned, cpu = _run(argv, self.env)
        handed, _ = self.sbatch_call()
        return Trial(began, handed, _stamp(start), _stamp(end), returned, cpu)

    def mlproj_cli(self, backend: str, config: str) -> Trial:
        folder, start, end, _ = self.job()
        argv = [sys.executable, "-m", "mlproj", "run", str(folder / "project"), "-b", backend]
        argv += ["-c", config, "--env-manager", "local"]
        began, returned, cpu = _run(argv, self.env)
        return self._mlproj_trial(backend, began, returned, cpu, start, end)

    def mlproj_api(self, backend: str, config: dict[str, str]) -> Trial:
        """The same through ``mlproj.run`` in this process (imports already paid): what the
        backend itself adds, without the CLI's Python start-up."""
        import mlproj

        folder, start, end, _ = self.job()
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            cpu_before = time.process_time() + _cpu_children()
            began = time.time()
            mlproj.run(
                str(folder / "project"), backend=backend, backend_config=config, env_manager="local"
            )
            returned = time.time()
            cpu = time.process_time() + _cpu_children() - cpu_before
        finally:
            os.environ.clear()
            os.environ.update(saved)
        trial = self._mlproj_trial(backend, began, returned, cpu, start, end)
        trial.cpu_before_engine = None  # the wrapper's parent is this whole process
        return trial

    def _mlproj_trial(
        self, backend: str, began: float, returned: float, cpu: float, start: Path, end: Path
    ) -> Trial:
        recorded = self.recorded_end()
        if backend == "slurm":
            handed, cpu_before = self.sbatch_call()
            return Trial(
                began, handed, _stamp(start), _stamp(end), returned, cpu, recorded, cpu_before
            )
        handed = self.ray_received(f"mlproj-{self.newest_run_id()}")
        return Trial(began, handed, _stamp(start), _stamp(end), returned, cpu, recorded)

    # -- Ray -------------------------------------------------------------------------------
    def ray_job_submit(self, address: str) -> Trial:
        folder, start, end, command = self.job()
        ray = str(Path(sys.executable).with_name("ray"))
        job_id = f"bench-{os.getpid()}-{self.count}"
        argv = [ray, "job", "submit", "--address", address, "--submission-id", job_id]
        argv += ["--working-dir", str(folder / "project"), "--", "bash", "-c", command]
        began, returned, cpu = _run(argv, self.env)
        return Trial(began, self.ray_received(job_id), _stamp(start), _stamp(end), returned, cpu)

    def ray_received(self, job_id: str) -> float:
        from ray.job_submission import JobSubmissionClient

        address = self.env.get("RAY_ADDRESS") or self.ray_address
        info = JobSubmissionClient(address).get_job_info(job_id)
        return float(info.start_time) / 1000

    ray_address = "http://127.0.0.1:8265"


def _print(sides: list[Side], baseline: Side) -> None:
    base = baseline.medians()
    keys: list[str] = []
    for side in sides:
        keys += [k for k in side.medians() if k not in keys]
    header = f"{'median of ' + str(len(baseline.trials)) + ' trials (s)':<24}"
    header += "".join(f"{s.name:>26}" for s in sides)
    print(header)
    for key in keys:
        line = f"{key:<24}"
        for side in sides:
            medians = side.medians()
            if key not in medians:
                line += f"{'-':>26}"
                continue
            low, high = side.spread(key)
            cell = f"{medians[key]:.3f} [{low:.2f}-{high:.2f}]"
            line += f"{cell:>26}"
        print(line)
    print(f"differences of medians against {baseline.name}:")
    for side in sides:
        if side is baseline:
            continue
        mine = side.medians()
        print(
            f"  {side.name}: start {mine['submit-to-start'] - base['submit-to-start']:+.3f} s "
            f"(before the engine {mine['  before the engine'] - base['  before the engine']:+.3f} s,"
            f" in the engine {mine['  in the engine'] - base['  in the engine']:+.3f} s); "
            f"end recorded {mine['end-to-recorded'] - base['end-to-recorded']:+.3f} s, "
            f"returned {mine['end-to-return'] - base['end-to-return']:+.3f} s; "
            f"CPU x{mine['CPU s of the CLI'] / base['CPU s of the CLI']:.1f}"
        )


def _alternate(repeat: int, makers: list[Callable[[], Trial]], sides: list[Side]) -> None:
    """Each round runs every side once, the order rotated, so load changes hit all sides."""
    for index in range(repeat):
        shift = index % len(makers)
        for offset in range(len(makers)):
            which = (shift + offset) % len(makers)
            sides[which].trials.append(makers[which]())


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--engines", default="slurm,ray")
    parser.add_argument("--job-seconds", type=float, default=0.0)
    parser.add_argument(
        "--ray-address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265")
    )
    args = parser.parse_args()
    engines = args.engines.split(",")
    print(f"load average before: {_load()}  ({os.cpu_count()} CPUs)")
    wall, cpu = time.time(), time.process_time() + _cpu_children()
    with tempfile.TemporaryDirectory(prefix="mlproj-bench-engines-") as tmp:
        bench = Bench(Path(tmp), args.job_seconds)
        bench.ray_address = args.ray_address
        job = f"{args.job_seconds:g} s job" if args.job_seconds else "trivial job"
        if "slurm" in engines:
            sides = [
                Side("sbatch --wait --wrap"),
                Side("mlproj run -b slurm"),
                Side("mlproj.run()"),
            ]
            _alternate(
                args.repeat,
                [
                    bench.sbatch,
                    lambda: bench.mlproj_cli("slurm", "{}"),
                    lambda: bench.mlproj_api("slurm", {}),
                ],
                sides,
            )
            print(f"\n== Slurm ({job}), load average now {_load()}")
            _print(sides, sides[0])
        if "ray" in engines:
            config = f'{{"address": "{args.ray_address}"}}'
            sides = [Side("ray job submit"), Side("mlproj run -b ray"), Side("mlproj.run()")]
            _alternate(
                args.repeat,
                [
                    lambda: bench.ray_job_submit(args.ray_address),
                    lambda: bench.mlproj_cli("ray", config),
                    lambda: bench.mlproj_api("ray", {"address": args.ray_address}),
                ],
                sides,
            )
            print(f"\n== Ray ({job}), load average now {_load()}")
            _print(sides, sides[0])
    used = time.process_time() + _cpu_children() - cpu
    print(
        f"\nload average after: {_load()}; the benchmark took {time.time() - wall:.0f} s wall, "
        f"{used:.1f} s CPU (its processes; not the engines' daemons)"
    )


if __name__ == "__main__":
    main()
