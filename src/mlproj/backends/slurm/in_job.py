"""Build the run's environment inside the Slurm job, then run the command in it.

With ``env_build: "job"`` the batch script runs ``python -m mlproj.backends.slurm.in_job
SPEC`` on the compute node instead of the command: for clusters where the submitting host
cannot build for the nodes (another OS or CPU) or where ``MLPROJ_HOME`` is not shared. The
Python must have mlproj installed (``mlproj_python``). SPEC is a JSON file written at
submission, holding no secrets: the run's variables come from the batch script.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mlproj.envs import EnvRequest, get_manager
from mlproj.errors import ExecutionException
from mlproj.spec.project import load_project


def main(argv: list[str]) -> int:
    try:
        spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        project = load_project(Path(spec["project_dir"]))
        manager = get_manager(spec["env_manager"])
        plan = manager.prepare(
            EnvRequest(
                project=project,
                command=spec["command"],
                env=dict(os.environ),
                run_id=spec["run_id"],
                experiment_id=spec["experiment_id"],
                tracking_uri=spec["tracking_uri"],
                artifact_uri=spec["artifact_uri"],
                log=lambda line: print(f"mlproj: {line}", file=sys.stderr, flush=True),
            )
        )
    except ExecutionException as exc:
        print(f"mlproj: error: {exc}", file=sys.stderr)
        return 2
    os.chdir(plan.cwd)
    os.execvpe(plan.argv[0], plan.argv, plan.env)  # noqa: S606 - an argv list, no shell
    return 127  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
