"""Start-up: `mlproj run` vs `mlflow run --env-manager local` on the same no-op project, and
`python -c "import mlproj"`, all interleaved in the same run.

Both CLIs run several times each, each with its own file store; then the in-process cost of
`mlproj.run()` is measured. Prints medians (wall and CPU time) and ratios.
Targets (issue 10): a no-op `mlproj run` median <= 70 ms, `import mlproj` <= 25 ms, with
bytecode caches present (the untimed first run writes them). On a machine shared with other
jobs compare the CPU medians, and the figures against `python -c pass` of the same run.

    python benchmarks/bench_core.py [--runs 15] [--skip-mlflow]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms, report, time_command, time_command_cpu

NOOP = """\
name: noop
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "true {alpha}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--skip-mlflow", action="store_true", help="do not time mlflow run")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlproj-bench-"))
    project = work / "noop"
    project.mkdir()
    (project / "MLproject").write_text(NOOP)
    mlproj_store = (work / "mlproj-runs").as_uri()
    mlflow_store = (work / "mlflow-runs").as_uri()
    sibling = Path(sys.executable).with_name("mlflow")
    mlflow_cli = str(sibling) if sibling.exists() else shutil.which("mlflow")

    mlproj_cli = str(Path(sys.executable).with_name("mlproj"))  # not a pyenv shim
    # One untimed run each: byte-compiles the sources as an installed package would have.
    time_command([mlproj_cli, "run", str(project), "-q"], env={"MLFLOW_TRACKING_URI": mlproj_store})
    mlproj_argv = [mlproj_cli, "run", str(project), "-P", "alpha=0.3", "-q"]
    mlflow_argv = [mlflow_cli or "mlflow", "run", str(project), "-P", "alpha=0.3",
                   "--env-manager", "local"]  # fmt: skip
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "mlproj run (no-op)": (mlproj_argv, {"MLFLOW_TRACKING_URI": mlproj_store}),
        'python -c "import mlproj"': ([sys.executable, "-c", "import mlproj"], {}),
        "python -c pass (interpreter start)": ([sys.executable, "-c", "pass"], {}),
    }
    if mlflow_cli and not args.skip_mlflow:
        mlflow_env = {"MLFLOW_TRACKING_URI": mlflow_store, "MLFLOW_ALLOW_FILE_STORE": "true"}
        commands["mlflow run --env-manager local"] = (mlflow_argv, mlflow_env)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, (argv, env) in commands.items():
            elapsed, used = time_command_cpu(argv, env=env)
            wall[name].append(elapsed)
            cpu[name].append(used)
    baseline = (
        "mlflow run --env-manager local" if "mlflow run --env-manager local" in wall else None
    )
    report("no-op project, whole CLI process (wall)", wall, baseline)
    report("no-op project, whole CLI process (CPU time, children included)", cpu, baseline)
    if baseline is None:
        print("(mlflow run not measured: pip install mlflow, or drop --skip-mlflow)")
    for name, target in (("mlproj run (no-op)", 70.0), ('python -c "import mlproj"', 25.0)):
        print(
            f"target {name}: median <= {target:.0f} ms; wall {median_ms(wall[name]):.1f} ms, "
            f"CPU {median_ms(cpu[name]):.1f} ms"
        )

    import os

    os.environ["MLFLOW_TRACKING_URI"] = (work / "inproc-runs").as_uri()
    import mlproj

    mlproj.run(str(project))  # warm imports
    samples = []
    for _ in range(args.runs * 2):
        started = time.perf_counter()
        mlproj.run(str(project), parameters={"alpha": 0.3})
        samples.append(time.perf_counter() - started)
    # What the command itself costs (bash -c true), to separate mlproj's own overhead.
    bare = [time_command(["bash", "-c", "true 0.3"]) for _ in range(args.runs * 2)]
    report(
        "mlproj.run() in-process, per run",
        {"mlproj.run() total": samples, "bash -c true alone": bare},
    )
    print(f"mlproj.run() overhead over bare command: {median_ms(samples) - median_ms(bare):.1f} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
