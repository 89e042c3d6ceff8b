"""A damaged file store (a power cut, a full disk): truncated or corrupt meta.yaml, metric and
param files are skipped with a warning naming the file; new runs are unaffected; a write
interrupted by SIGKILL never leaves a half-written file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlproj.tracking import get_store
from mlproj.tracking.entities import Metric


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _runs(count: int) -> list[str]:
    store = get_store()
    ids = []
    for index in range(count):
        info = store.create_run(
            "0" if index else store.resolve_experiment(), run_name=f"r{index}", tags={}, user_id="u"
        )
        store.log_batch(
            info.run_id,
            params={"p": str(index)},
            metrics=[Metric("m", float(index), 1000 + index, 0)],
        )
        store.set_terminated(info.run_id, "FINISHED")
        ids.append(info.run_id)
    return ids


def _run_dir(run_id: str) -> Path:
    root = Path(get_store().tracking_uri.removeprefix("file://"))
    return root / "0" / run_id


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: "", id="empty"),
        pytest.param(lambda text: text[: len(text) // 3] + "\x00\x00", id="truncated-binary"),
        pytest.param(lambda text: "artifact_uri: [unclosed\n", id="invalid-yaml"),
        pytest.param(lambda text: "- a list\n- not a mapping\n", id="not-a-mapping"),
    ],
)
def test_a_damaged_meta_yaml_is_skipped_with_a_warning(damage: object) -> None:
    good, bad = _runs(2)
    meta = _run_dir(bad) / "meta.yaml"
    meta.write_text(damage(meta.read_text()))  # type: ignore[operator]
    listed = _cli("runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert good in listed.stdout
    assert bad not in listed.stdout
    assert str(meta) in listed.stderr and "warning" in listed.stderr
    # New runs are unaffected.
    (new,) = _runs(1)
    again = _cli("runs", "list")
    assert new in again.stdout and good in again.stdout


def test_a_corrupt_metric_file_keeps_the_good_points_and_warns() -> None:
    (run_id,) = _runs(1)
    metric = _run_dir(run_id) / "metrics" / "m"
    with metric.open("ab") as out:
        out.write(b"1700000000000 0.5 1\n17000000\xff\xfe half a li")  # a write cut short
    shown = _cli("runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "m = 0.5" in shown.stdout  # the newest complete point
    assert str(metric) in shown.stderr and "malformed" in shown.stderr


def test_a_corrupt_param_file_does_not_break_listing() -> None:
    (run_id,) = _runs(1)
    (_run_dir(run_id) / "params" / "p").write_bytes(b"\xff\xfe\x00garbage")
    shown = _cli("runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    listed = _cli("runs", "list", "--json")
    assert listed.returncode == 0 and run_id in listed.stdout


WRITER = """
import sys
from mlproj.tracking import get_store
from mlproj.tracking.entities import Metric
store = get_store(sys.argv[1])
experiment = store.resolve_experiment()
print("ready", flush=True)
step = 0
while True:
    info = store.create_run(experiment, run_name=f"w{step}", tags={"t": "v" * 3000}, user_id="u")
    for round in range(5):
        store.log_batch(info.run_id, params={f"p{round}": "x" * 5000}, tags={"t": "w" * 3000},
                        metrics=[Metric("m", float(step), step, step)])
        step += 1
    store.set_terminated(info.run_id, "FINISHED")
"""


def test_sigkill_during_writes_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    uri = (tmp_path / "store").as_uri()
    rng = random.Random(7)
    for _ in range(30):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready", (
            writer.stderr.read() if writer.stderr else ""
        )
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()  # reaps it and closes its pipes
    root = tmp_path / "store"

    def visible(pattern: str) -> list[Path]:
        # A run is built in a hidden staging folder (.tmp-*) and renamed into place: a kill
        # before the rename leaves that folder, which no reader takes for a run.
        return [p for p in root.glob(pattern) if not p.relative_to(root).parts[1].startswith(".")]

    metas = visible("*/*/meta.yaml")
    assert metas
    for meta in metas:
        record = yaml.safe_load(meta.read_text())
        assert isinstance(record, dict) and record["run_id"] == meta.parent.name, meta
        assert "user_id" in record, f"{meta} lost keys"
    for param in visible("*/*/params/*"):
        assert param.read_text() == "x" * 5000, f"{param} is half-written"
    for tag in visible("*/*/tags/t"):
        assert tag.read_text() in ("v" * 3000, "w" * 3000), f"{tag} is half-written"
    for metric in visible("*/*/metrics/m"):
        text = metric.read_text()
        assert text == "" or text.endswith("\n"), f"{metric} ends with a partial line"
    listed = get_store(uri).search_runs(["0"], max_results=100000)
    assert sorted(r.run_id for r in listed) == sorted(m.parent.name for m in metas)
