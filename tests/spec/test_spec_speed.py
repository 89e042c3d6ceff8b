"""Spec + params stay cheap: a typical project loads, resolves and renders in well under 5 ms."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mlproj.spec.params import render_command, resolve_parameters
from mlproj.spec.project import load_project

TYPICAL = """\
name: tutorial
python_env: python_env.yaml
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5, min: 0, max: 1, help: Regularisation strength}
      l1_ratio: {type: float, default: 0.1}
      epochs: {type: int, default: 10}
      optimizer: {type: string, default: adam, choices: [adam, sgd, rmsprop]}
      shuffle: {type: bool, default: true}
      data: {type: path, default: data}
    command: "python train.py {alpha} {l1_ratio} --epochs {epochs} --opt {optimizer} {shuffle} {data}"
  validate:
    parameters:
      model_uri: uri
    command: "python validate.py {model_uri}"
"""


def test_load_resolve_render_is_fast(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(TYPICAL)
    (tmp_path / "python_env.yaml").write_text("python: '3.11'\n")
    (tmp_path / "data").mkdir()
    timings = []
    for _ in range(200):
        start = time.perf_counter()
        project = load_project(tmp_path)
        entry = project.get_entry_point("main")
        resolved = resolve_parameters(
            entry,
            {"alpha": "0.3", "epochs": "20", "extra": "x y"},
            project_dir=project.directory,
            spec_path=project.spec_path,
        )
        command = render_command(entry, resolved)
        timings.append(time.perf_counter() - start)
    assert command.endswith(f"{tmp_path / 'data'} --extra 'x y'")
    median_ms = statistics.median(timings) * 1000
    print(f"load+resolve+render median {median_ms:.3f} ms")
    assert median_ms < 4, f"median {median_ms:.3f} ms"


def test_importing_spec_and_params_stays_light() -> None:
    """No SDKs or network stacks at import: `mlproj --help` depends on it."""
    code = (
        "import sys, json, time; t = time.perf_counter(); import mlproj.spec.params, mlproj.spec.project; "
        "print(json.dumps([time.perf_counter() - t, sorted(sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, modules = json.loads(out.stdout)
    heavy = {"mlflow", "requests", "fsspec", "docker", "kubernetes", "rich", "urllib.request"}
    assert heavy.isdisjoint(modules)
    assert "mlproj.downloads" not in modules
    print(f"import mlproj.spec.project + mlproj.spec.params: {seconds * 1000:.1f} ms")
    assert seconds < 0.2
