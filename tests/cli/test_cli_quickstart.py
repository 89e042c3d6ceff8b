"""The README's quick start, as written: the example logs real metrics that `runs show` shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from cli_support import run_cli

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


def test_the_quick_start_logs_metrics_that_runs_show_shows() -> None:
    commands = _quick_start_commands()
    assert [c[:2] for c in commands] == [
        ["run", "examples/hello"],
        ["runs", "list"],
        ["runs", "show"],
        ["ui"],
    ]
    run, listing, show, _ui = commands  # `mlproj ui` serves until stopped: not run here
    done = run_cli(*run, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "metrics were only printed" not in done.stdout  # mlflow is in the example's env
    assert re.search(r"mlproj: Environment uv-\w+ ready in", done.stderr)
    listed = run_cli(*listing, cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    run_id = listed.stdout.splitlines()[1].split()[0]
    shown = run_cli(*show[:2], run_id[:8], cwd=ROOT)  # the README's id, replaced by a real one
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^Environment +uv$", shown.stdout, flags=re.M)
    metrics = shown.stdout.split("Metrics:\n", 1)[1].split("Tags:", 1)[0]
    assert re.fullmatch(r"  loss = 0\.122\d*\n", metrics), metrics
    assert "  alpha = 0.3\n" in shown.stdout
