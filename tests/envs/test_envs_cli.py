"""``mlproj envs list`` and ``mlproj envs prune`` on a real cache in a temporary MLPROJ_HOME."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from mlproj.cli.envs import envs_group
from mlproj.envs import EnvRequest
from mlproj.envs.cache import MARKER, envs_root
from mlproj.envs.python.uv import UvManager
from mlproj.spec.project import Project


def build_env(tmp_path: Path, name: str, deps: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "python_env.yaml").write_text(f"dependencies: [{deps}]\n" if deps else "{}\n")
    project = Project(root, None, None, {}, "python_env", root / "python_env.yaml")
    request = EnvRequest(project, "true", dict(os.environ), "r", "0", "file:///x", "file:///y")
    return Path(UvManager().prepare(request).env["VIRTUAL_ENV"]).parent


def age(entry: Path, days: float) -> None:
    meta = json.loads((entry / MARKER).read_text())
    meta["last_used"] = time.time() - days * 86400
    (entry / MARKER).write_text(json.dumps(meta))


def test_list_shows_ready_and_incomplete_envs(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(envs_group, ["list"])
    assert empty.exit_code == 0
    assert "No cached environments" in empty.output

    entry = build_env(tmp_path, "proj", "")
    (envs_root() / "uv-0000deadbeef").mkdir()  # a build that died before its marker
    result = runner.invoke(envs_group, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "PYTHON", "LAST", "USED", "SIZE", "STATUS", "PROJECT"]
    ready = next(line for line in lines if line.startswith(entry.name))
    assert "ready" in ready and str(tmp_path / "proj") in ready and "just now" in ready
    assert any(line.startswith("uv-0000deadbeef") and "incomplete" in line for line in lines)
    assert "2 environment(s) in" in result.output


def test_prune_by_age_dry_run_and_all(tmp_path: Path) -> None:
    old = build_env(tmp_path, "old", "")
    new = build_env(tmp_path, "new", "six")
    age(old, 40)
    runner = CliRunner()

    dry = runner.invoke(envs_group, ["prune", "--dry-run"])  # default: unused for 30 days
    assert dry.exit_code == 0, dry.output
    assert f"would remove {old.name}" in dry.output and new.name not in dry.output
    assert old.exists()

    pruned = runner.invoke(envs_group, ["prune", "--older-than", "10"])
    assert pruned.exit_code == 0, pruned.output
    assert (
        f"removed {old.name}" in pruned.output and "unused for more than 10 days" in pruned.output
    )
    assert not old.exists() and new.exists()

    both = runner.invoke(envs_group, ["prune", "--all", "--older-than", "1"])
    assert both.exit_code == 2 and "not both" in both.output

    everything = runner.invoke(envs_group, ["prune", "--all"])
    assert everything.exit_code == 0, everything.output
    assert f"removed {new.name}" in everything.output
    assert not new.exists()
