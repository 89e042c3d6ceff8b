"""Shared helpers for the benchmark scripts: timing commands and printing comparisons."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def time_command(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Wall seconds of one command; fails loudly if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        list(argv),
        env=bench_env(env),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"benchmark command failed: {' '.join(argv)}\n{done.stderr.decode()[-2000:]}"
        )
    return elapsed


def time_command_cpu(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one command. CPU time
    is what a busy machine inflates least: several jobs sharing the cores stretch the wall
    time of each, not the work it does."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time_command(argv, env=env, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment benchmarked commands run with. PYTHONDONTWRITEBYTECODE (set on some
    machines) is dropped: installed users never recompile every module on every start."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def report(title: str, rows: dict[str, list[float]], baseline: str | None = None) -> None:
    """Print median and spread of each row, and each row's ratio to ``baseline``."""
    print(f"\n== {title}")
    base = median_ms(rows[baseline]) if baseline else None
    for name, samples in rows.items():
        med = median_ms(samples)
        spread = f"min {min(samples) * 1000:7.1f}  max {max(samples) * 1000:7.1f}"
        ratio = f"  {base / med:6.1f}x faster than {baseline}" if base and name != baseline else ""
        print(f"{name:<40} median {med:8.1f} ms  ({spread}, n={len(samples)}){ratio}")
