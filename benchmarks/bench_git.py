"""Running a project from a Git URI: mlproj (mirror cache) vs `mlflow run` (fresh clone).

Builds a repository with ~1,000 commits (git fast-import), serves it with `git daemon` on
127.0.0.1, then times, as whole CLI processes:

* `mlproj run git://... -e main --env-manager local`: the first run (empty MLPROJ_HOME, clones
  the mirror) and repeated runs (cached: one `git ls-remote`, no fetch, reused checkout);
* `mlproj run <local folder>` of the same project, the floor a cached Git run is compared with;
* `mlflow run git://... --env-manager local` (MLFLOW_ALLOW_FILE_STORE=true, its own store).

Then the in-process cost of `fetch_project` alone (cold, cached branch, cached full SHA).

    python benchmarks/bench_git.py [--runs 7] [--commits 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms, report, time_command

MLPROJECT = """\
name: gitbench
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "true {alpha}"
"""


def fast_import_stream(commits: int, files: int) -> bytes:
    """A fast-import stream: `files` files in the first commit, one file changed per commit."""
    out: list[bytes] = []

    def data(payload: bytes) -> None:
        out.append(b"data %d\n" % len(payload))
        out.append(payload + b"\n")

    stamp = 1_700_000_000
    for i in range(1, commits + 1):
        out.append(b"commit refs/heads/main\nmark :%d\n" % i)
        out.append(b"committer Bench <bench@example.com> %d +0000\n" % (stamp + i))
        data(b"commit %d" % i)
        if i > 1:
            out.append(b"from :%d\n" % (i - 1))
        if i == 1:
            for f in range(files):
                out.append(b"M 100644 inline src/module_%03d.py\n" % f)
                data(b"VALUE = %d\n" % f)
        out.append(b"M 100644 inline history.txt\n")
        data(b"line %d\n" % i * 20)
        if i == commits:
            out.append(b"M 100644 inline MLproject\n")
            data(MLPROJECT.encode())
    out.append(b"done\n")
    return b"".join(out)


def make_repo(base: Path, commits: int) -> Path:
    bare = base / "bench.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(
        ["git", "--git-dir", str(bare), "fast-import", "--quiet", "--done"],
        input=fast_import_stream(commits, files=200),
        check=True,
    )
    subprocess.run(
        ["git", "--git-dir", str(bare), "symbolic-ref", "HEAD", "refs/heads/main"], check=True
    )
    subprocess.run(["git", "--git-dir", str(bare), "gc", "-q"], check=True)
    return bare


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon(base: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    raise SystemExit("git daemon did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--commits", type=int, default=1000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlproj-bench-git-"))
    served = work / "served"
    served.mkdir()
    bare = make_repo(served, args.commits)
    local = work / "local-checkout"
    subprocess.run(["git", "clone", "-q", str(bare), str(local)], check=True)
    daemon, port = start_daemon(served)
    uri = f"git://127.0.0.1:{port}/bench.git"
    mlflow_cli = shutil.which("mlflow")
    print(f"repository: {args.commits} commits, served at {uri}")

    mlproj_env = {
        "MLPROJ_HOME": str(work / "mlproj-home"),
        "MLFLOW_TRACKING_URI": (work / "mlproj-runs").as_uri(),
    }
    mlflow_env = {
        "MLFLOW_TRACKING_URI": (work / "mlflow-runs").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    mlproj_git = ["mlproj", "run", uri, "-e", "main", "--env-manager", "local", "-q"]
    mlproj_local = ["mlproj", "run", str(local), "-e", "main", "--env-manager", "local", "-q"]
    mlflow_git = [mlflow_cli or "mlflow", "run", uri, "-e", "main", "--env-manager", "local"]

    try:
        rows: dict[str, list[float]] = {
            "mlproj run git (first, empty cache)": [time_command(mlproj_git, env=mlproj_env)],
            "mlproj run git (cached)": [],
            "mlproj run git -v <full sha> (cached)": [],
            "mlproj run local folder": [],
        }
        head = subprocess.run(
            ["git", "--git-dir", str(bare), "rev-parse", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        mlproj_sha = [*mlproj_git, "-v", head]
        if mlflow_cli:
            rows["mlflow run git (first)"] = [time_command(mlflow_git, env=mlflow_env)]
            rows["mlflow run git (repeated)"] = []
        for _ in range(args.runs):
            rows["mlproj run git (cached)"].append(time_command(mlproj_git, env=mlproj_env))
            rows["mlproj run git -v <full sha> (cached)"].append(
                time_command(mlproj_sha, env=mlproj_env)
            )
            rows["mlproj run local folder"].append(time_command(mlproj_local, env=mlproj_env))
            if mlflow_cli:
                rows["mlflow run git (repeated)"].append(time_command(mlflow_git, env=mlflow_env))
        report(
            f"Git URI ({args.commits} commits over git://), whole CLI process (wall)",
            rows,
            "mlflow run git (repeated)" if mlflow_cli else None,
        )
        cached = median_ms(rows["mlproj run git (cached)"])
        floor = median_ms(rows["mlproj run local folder"])
        print(f"cached Git run minus local-folder run: {cached - floor:+.1f} ms (target <= 150)")
        if mlflow_cli:
            first_ratio = median_ms(rows["mlflow run git (first)"]) / median_ms(
                rows["mlproj run git (first, empty cache)"]
            )
            repeat_ratio = median_ms(rows["mlflow run git (repeated)"]) / cached
            print(f"first run: mlproj {first_ratio:.1f}x faster than mlflow run")
            print(f"repeated run: mlproj {repeat_ratio:.1f}x faster than mlflow run (target >= 5)")
        else:
            print("(mlflow is not installed: no comparison; pip install mlflow)")

        in_process(work, uri, local, args.runs)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def in_process(work: Path, uri: str, local: Path, runs: int) -> None:
    """fetch_project alone: what the source step costs inside one process."""
    os.environ["MLPROJ_HOME"] = str(work / "inproc-home")
    from mlproj.sources import fetch_project

    started = time.perf_counter()
    first = fetch_project(uri)
    cold = [time.perf_counter() - started]
    branch, sha, folder = [], [], []
    for _ in range(runs * 3):
        started = time.perf_counter()
        fetch_project(uri)
        branch.append(time.perf_counter() - started)
        started = time.perf_counter()
        fetch_project(uri, version=first.git_commit)
        sha.append(time.perf_counter() - started)
        started = time.perf_counter()
        fetch_project(str(local))
        folder.append(time.perf_counter() - started)
    report(
        "fetch_project() in-process",
        {
            "git, cold (mirror clone + checkout)": cold,
            "git, cached, default branch (ls-remote)": branch,
            "git, cached, full SHA (no network)": sha,
            "local folder in a Git work tree": folder,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
