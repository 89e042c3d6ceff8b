"""`mlproj run` vs `mlflow run --env-manager local` on the same no-op project.

Both CLIs run interleaved, several times each, each with its own file store; then the
in-process cost of `mlproj.run()` is measured. Prints medians and ratios.

    python benchmarks/bench_core.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms, report, time_command

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
    rows: dict[str, list[float]] = {"mlproj run": []}
    if mlflow_cli:
        rows["mlflow run --env-manager local"] = []
    for _ in range(args.runs):
        rows["mlproj run"].append(
            time_command(
                ["mlproj", "run", str(project), "-P", "alpha=0.3", "-q"],
                env={"MLFLOW_TRACKING_URI": mlproj_store},
            )
        )
        if mlflow_cli:
            rows["mlflow run --env-manager local"].append(
                time_command(
                    [mlflow_cli, "run", str(project), "-P", "alpha=0.3", "--env-manager", "local"],
                    env={"MLFLOW_TRACKING_URI": mlflow_store, "MLFLOW_ALLOW_FILE_STORE": "true"},
                )
            )
    # For scale: what starting the interpreter alone costs on this machine.
    rows["python -c pass (interpreter start)"] = [
        time_command([sys.executable, "-c", "pass"]) for _ in range(args.runs)
    ]
    baseline = "mlflow run --env-manager local" if mlflow_cli else None
    report("no-op project, whole CLI process (wall)", rows, baseline)
    if not mlflow_cli:
        print("(mlflow is not installed: no comparison; pip install mlflow)")

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
