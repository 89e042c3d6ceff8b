"""A full disk under the tracking store during a run: a clear warning, the command is not
blocked, and the run is marked FAILED (its output is incomplete) once the store can be written
again. The store is a real, small tmpfs, filled the way a busy disk fills."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlproj.tracking import get_store

pytestmark = pytest.mark.slow

MLPROJECT = """name: chatty
entry_points:
  main:
    parameters:
      done: {type: string}
    command: "python chatty.py {done}"
"""
# About 4 MB of output (more than the disk has left), then a marker outside the full disk.
CHATTY = """import pathlib, sys
for i in range(40000):
    print("line", i, "x" * 90)
pathlib.Path(sys.argv[1]).write_text("done")
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_during_a_run(tmp_path: Path, small_disk: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "chatty.py").write_text(CHATTY)
    store_uri = (small_disk / "mlruns").as_uri()
    get_store(store_uri).resolve_experiment()  # the store exists before the disk fills
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 + 512 * 1024))  # leaves about 0.5 MB
    done = tmp_path / "done"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "-P", f"done={done}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    # Not blocked: the command printed everything and finished.
    assert done.read_text() == "done"
    assert time.monotonic() - started < 120
    assert "output log is incomplete" in run.stderr, run.stderr
    assert "No space left on device" in run.stderr
    assert "runs sync" in run.stderr  # the end waits in the journal
    assert run.returncode != 0
    (recorded,) = get_store(store_uri).search_runs(["0"])
    assert recorded.info.status == "RUNNING"  # the disk is still full: not written yet

    filler.unlink()  # the disk has room again
    listed = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    (recorded,) = get_store(store_uri).search_runs(["0"])
    assert recorded.info.status == "FAILED"
    assert "output log is incomplete" in recorded.tags["mlproj.error"]
