"""Environment preparation: mlproj vs ``mlflow run --env-manager virtualenv``.

Project: python_env.yaml with ``python: "3.10.13"`` (an exact patch version, because MLflow's
virtualenv manager needs one that pyenv has installed) and one small package (six).

* cold: the tool's environment cache is empty (a new MLPROJ_HOME / MLFLOW_ENV_ROOT per run);
  the package download caches of uv and pip are left as they are (warm after the first run) so
  the comparison measures environment creation, not the network.
* warm: the environment exists.
* warm ``mlproj run`` vs ``mlproj run --env-manager local``: the cost of a cached environment.

Usage: python benchmarks/bench_envs.py [--cold N] [--warm N] [--skip-mlflow]
Targets: warm within 50 ms of --env-manager local; cold at least 3x faster than MLflow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = "3.10.13"
MLPROJECT = """name: bench-envs
python_env: python_env.yaml
entry_points:
  main:
    command: "python -c 'import six'"
"""


def make_project(root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "python_env.yaml").write_text(f'python: "{PYTHON}"\ndependencies: [six]\n')
    return project


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def mlproj_argv(project: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mlproj", "run", str(project), *extra]


def mlflow_argv(project: Path) -> list[str]:
    return [sys.executable, "-m", "mlflow", "run", str(project), "--env-manager", "virtualenv"]


def series(label: str, runs: list[float]) -> float:
    median = statistics.median(runs)
    shown = ", ".join(f"{r:.3f}" for r in runs)
    print(f"  {label:<38} median {median:8.3f} s   runs: {shown}")
    return median


def bench_prepare(project: Path, home: Path, repeat: int = 200) -> tuple[float, float]:
    """Median milliseconds of validate() + prepare() for a cached env, and for local."""
    os.environ["MLPROJ_HOME"] = str(home)  # a benchmark script, not library code
    from mlproj.envs import EnvRequest, get_manager
    from mlproj.spec.project import load_project

    loaded = load_project(project)
    request = EnvRequest(loaded, "true", dict(os.environ), "r", "0", "file:///x", "file:///y")
    out = []
    for name in ("uv", "local"):
        manager = get_manager(name)
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            manager.validate(loaded)
            manager.prepare(request)
            samples.append((time.perf_counter() - started) * 1000)
        out.append(statistics.median(samples))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=int, default=3, help="cold runs per tool")
    parser.add_argument("--warm", type=int, default=15, help="warm runs per variant")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-envs-"))
    try:
        project = make_project(work)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLPROJ_"))}
        base["MLFLOW_ALLOW_FILE_STORE"] = "true"
        # Installed packages have bytecode; a PYTHONDONTWRITEBYTECODE shell would make every
        # run recompile both tools' sources, which no user pays.
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        base["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        pyenv_bin = str(Path.home() / ".pyenv" / "bin")
        base["PATH"] = f"{pyenv_bin}{os.pathsep}{base.get('PATH', '')}"  # MLflow needs pyenv

        def mlproj_env(home: Path) -> dict[str, str]:
            return {**base, "MLPROJ_HOME": str(home),
                    "MLFLOW_TRACKING_URI": (work / "mlproj-runs").as_uri()}  # fmt: skip

        def mlflow_env(env_root: Path) -> dict[str, str]:
            return {**base, "MLFLOW_ENV_ROOT": str(env_root),
                    "MLFLOW_TRACKING_URI": (work / "mlflow-runs").as_uri()}  # fmt: skip

        # Prime the package caches (uv's and pip's) so cold means "no environment".
        timed(mlproj_argv(project), mlproj_env(work / "prime-home"), work)
        if not args.skip_mlflow:
            timed(mlflow_argv(project), mlflow_env(work / "prime-mlflow"), work)

        print(f"Project: python {PYTHON} + six; {os.cpu_count()} CPUs")
        print("cold (no cached environment):")
        cold_mlproj = series(
            "mlproj run",
            [timed(mlproj_argv(project), mlproj_env(work / f"home-c{i}"), work)
             for i in range(args.cold)],
        )  # fmt: skip
        cold_mlflow = None
        if not args.skip_mlflow:
            cold_mlflow = series(
                "mlflow run --env-manager virtualenv",
                [timed(mlflow_argv(project), mlflow_env(work / f"mlflow-c{i}"), work)
                 for i in range(args.cold)],
            )  # fmt: skip

        print("warm (environment cached):")
        home = work / "home-warm"
        timed(mlproj_argv(project), mlproj_env(home), work)
        # Interleaved, so load changes on the machine hit both variants alike.
        warm_runs: list[float] = []
        local_runs: list[float] = []
        local_argv = mlproj_argv(project, "--env-manager", "local")
        for _ in range(args.warm):
            warm_runs.append(timed(mlproj_argv(project), mlproj_env(home), work))
            local_runs.append(timed(local_argv, mlproj_env(home), work))
        warm_mlproj = series("mlproj run", warm_runs)
        warm_local = series("mlproj run --env-manager local", local_runs)
        warm_mlflow = None
        if not args.skip_mlflow:
            root = work / "mlflow-warm"
            timed(mlflow_argv(project), mlflow_env(root), work)
            warm_mlflow = series(
                "mlflow run --env-manager virtualenv",
                [timed(mlflow_argv(project), mlflow_env(root), work)
                 for _ in range(max(3, args.warm // 2))],
            )  # fmt: skip

        prepare_ms, local_ms = bench_prepare(project, home)
        print("in-process, warm (load-robust; no interpreter start-up):")
        print(f"  UvManager.prepare() median {prepare_ms:.2f} ms; LocalManager {local_ms:.2f} ms")

        print("results:")
        overhead_ms = (warm_mlproj - warm_local) * 1000
        verdict = "OK" if overhead_ms <= 50 else "MISSED"
        print(f"  warm mlproj - local: {overhead_ms:+.0f} ms (target <= 50 ms: {verdict})")
        if cold_mlflow is not None:
            ratio = cold_mlflow / cold_mlproj
            verdict = "OK" if ratio >= 3 else "MISSED"
            print(f"  cold: mlproj is {ratio:.1f}x faster than MLflow (target >= 3x: {verdict})")
        if warm_mlflow is not None:
            print(f"  warm: mlproj is {warm_mlflow / warm_mlproj:.1f}x faster than MLflow")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
