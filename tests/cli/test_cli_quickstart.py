"""The README's quick start, as written, in a folder laid out as the clone: the example logs
real metrics into MLflow's default store (./mlflow.db), `runs show` shows them, and `mlproj ui`
serves them (an MLflow that refused the database, as one older than the example's did, fails
this test)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.cli.cli_support import EXAMPLE

ROOT = Path(__file__).resolve().parents[2]


def _quick_start_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["mlproj"]:
                commands.append(words[1:])
    return commands


def _env() -> dict[str, str]:
    """A user's shell: no tracking URI set, so MLflow's default rule picks ./mlflow.db."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def _mlproj(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=600,
        check=False,
    )


def test_the_quick_start_logs_metrics_that_runs_show_and_the_ui_show(tmp_path: Path) -> None:
    commands = _quick_start_commands()
    assert [c[:2] for c in commands] == [
        ["run", "examples/hello"],
        ["runs", "list"],
        ["runs", "show"],
        ["ui"],
    ]
    run, listing, show, ui = commands
    clone = tmp_path / "clone"
    shutil.copytree(EXAMPLE, clone / "examples" / "hello")
    done = _mlproj(*run, cwd=clone)
    assert done.returncode == 0, done.stderr
    assert "metrics were only printed" not in done.stdout  # mlflow is in the example's env
    assert re.search(r"mlproj: Environment uv-\w+ ready in", done.stderr)
    assert (clone / "mlflow.db").is_file()  # MLflow's default store, as the README says
    listed = _mlproj(*listing, cwd=clone)
    assert listed.returncode == 0, listed.stderr
    run_id = listed.stdout.splitlines()[1].split()[0]
    shown = _mlproj(*show[:2], run_id[:8], cwd=clone)  # the README's id, replaced by a real one
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^Environment +uv$", shown.stdout, flags=re.M)
    metrics = shown.stdout.split("Metrics:\n", 1)[1].split("Tags:", 1)[0]
    assert re.fullmatch(r"  loss = 0\.122\d*\n", metrics), metrics
    assert "  alpha = 0.3\n" in shown.stdout

    server = subprocess.Popen(
        [sys.executable, "-m", "mlproj", *ui],
        cwd=clone,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()  # the one stdout line, once it serves
        assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.stderr else ""
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": ["0"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            (found,) = json.load(response)["runs"]
        assert found["info"]["run_id"] == run_id
        assert [m["key"] for m in found["data"]["metrics"]] == ["loss"]
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert err.splitlines()[-1] == "mlproj: MLflow UI stopped"
