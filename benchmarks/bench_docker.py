"""Docker overhead: a repeated ``mlproj run --build-image`` of an unchanged project versus a
plain ``docker run`` of the very same image. Target: at most 0.5 s extra.

    python benchmarks/bench_docker.py [--repeat 7] [--image mlproj-ci/busybox:1]

Needs a Docker daemon and the image (``.ci/docker-setup.sh`` provides both).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, report, time_command

MLPROJECT = """name: bench-docker
docker_env:
  image: {image}
entry_points:
  main:
    parameters:
      greeting: {{type: string, default: hello}}
    command: "echo {{greeting}}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--image", default="mlproj-ci/busybox:1")
    args = parser.parse_args()
    # `python -m mlproj`: measures mlproj, not a pyenv shim in front of its script.
    mlproj = [sys.executable, "-m", "mlproj"]
    if subprocess.run(
        ["docker", "image", "inspect", args.image], capture_output=True, check=False
    ).returncode:
        sys.exit(f"image {args.image} missing: run .ci/docker-setup.sh")

    with tempfile.TemporaryDirectory(prefix="mlproj-bench-docker-") as tmp:
        root = Path(tmp)
        project = root / "project"
        project.mkdir()
        (project / "MLproject").write_text(MLPROJECT.format(image=args.image))
        (project / "train.py").write_text("print('unused')\n" * 200)
        env = {
            "MLPROJ_HOME": str(root / "home"),
            "MLFLOW_TRACKING_URI": (root / "mlruns").as_uri(),
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }
        run_argv = [*mlproj, "run", str(project), "--build-image", "-A", "network=none"]
        first = time_command(run_argv, env=env)
        print(f"first run (builds the image): {first * 1000:.0f} ms")
        uri_files = list((root / "mlruns").glob("*/*/tags/mlflow.docker.image.uri"))
        image = uri_files[0].read_text().strip()
        plain_argv = ["docker", "run", "--rm", "--network", "none", image, "sh", "-c", "echo hello"]

        rows: dict[str, list[float]] = {"docker run (same image)": [], "mlproj run (reused)": []}
        for _ in range(args.repeat):  # interleaved so load changes hit both alike
            rows["docker run (same image)"].append(time_command(plain_argv, env=env))
            rows["mlproj run (reused)"].append(time_command(run_argv, env=env))
        # The same mlproj pipeline without docker, to separate core overhead from docker's.
        local = root / "local-project"
        local.mkdir()
        (local / "MLproject").write_text(
            'name: bench-local\nentry_points:\n  main:\n    command: "echo hello"\n'
        )
        rows["bash -c (no docker)"] = []
        rows["mlproj run (no docker_env)"] = []
        for _ in range(args.repeat):
            rows["bash -c (no docker)"].append(time_command(["bash", "-c", "echo hello"]))
            rows["mlproj run (no docker_env)"].append(
                time_command([*mlproj, "run", str(local)], env=env)
            )
        report(f"second and later runs of an unchanged project ({args.image})", rows)
        manager_ms = _manager_cost(project, root, env, args.repeat)
        print(
            f"DockerManager.validate + prepare in-process (image reused): median {manager_ms:.0f} ms"
        )
        extra = median_ms(rows["mlproj run (reused)"]) - median_ms(rows["docker run (same image)"])
        diffs = [
            (m - d) * 1000
            for m, d in zip(
                rows["mlproj run (reused)"], rows["docker run (same image)"], strict=True
            )
        ]
        core = median_ms(rows["mlproj run (no docker_env)"]) - median_ms(
            rows["bash -c (no docker)"]
        )
        print(f"core mlproj overhead without docker (same machine, same moment): {core:.0f} ms")
        print(
            f"mlproj extra: median {extra:.0f} ms (paired median {statistics.median(diffs):.0f} ms);"
            f" target <= 500 ms: {'OK' if extra <= 500 else 'MISSED'}"
        )
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, check=False)


def _manager_cost(project: Path, root: Path, env: dict[str, str], repeat: int) -> float:
    """Median ms of the docker manager's own work for a reused image (validate + prepare)."""
    import os
    import time

    os.environ.update(env)
    from mlproj.envs.base import EnvRequest
    from mlproj.envs.docker import DockerManager
    from mlproj.spec.project import load_project

    spec = load_project(project)
    manager = DockerManager()
    samples = []
    for index in range(repeat):
        started = time.perf_counter()
        manager.validate(spec)
        manager.prepare(
            EnvRequest(
                project=spec,
                command="echo hello",
                env=dict(os.environ),
                run_id=f"bench{index}",
                experiment_id="0",
                tracking_uri=(root / "mlruns").as_uri(),
                artifact_uri=(root / "mlruns" / "0" / f"bench{index}" / "artifacts").as_uri(),
                build_image=True,
                docker_args={"network": "none"},
            )
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


if __name__ == "__main__":
    main()
