"""Projects and helpers for the orchestration tests: real runs of small Python scripts.

The scripts log metrics and artifacts through mlproj's own store client (the child gets
MLFLOW_TRACKING_URI and MLFLOW_RUN_ID like any project run), which starts in milliseconds
where importing mlflow takes seconds; a test reads the results back with real MLflow too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from mlproj.statuses import RunStatus
from mlproj.tags import MLFLOW_PARENT_RUN_ID
from mlproj.tracking import get_store
from mlproj.tracking.entities import Run

PY = sys.executable

TRIAL_SCRIPT = """\
import os, sys, time
from mlproj.tracking import get_store
from mlproj.tracking.entities import Metric
x, y, sleep = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
time.sleep(0 if os.environ.get("FAST") else sleep)
if os.environ.get("FAIL_WHEN_Y") == str(y):
    sys.exit(3)
once = os.environ.get("FAIL_ONCE_DIR")
if once and not os.path.exists(os.path.join(once, str(x))):
    open(os.path.join(once, str(x)), "w").close()
    sys.exit(5)
store = get_store()
run = os.environ["MLFLOW_RUN_ID"]
loss = (x - 0.3) ** 2 + y
store.log_batch(run, metrics=[Metric("loss", loss, int(time.time() * 1000))],
                tags={"seen.gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "none")})
"""

STEPS_SCRIPT = """\
import os, sys, tempfile
from pathlib import Path
from mlproj.tracking import get_store
store = get_store()
run = os.environ["MLFLOW_RUN_ID"]
what = sys.argv[1]
out = Path(tempfile.mkdtemp())
if os.environ.get("SLOW_STEP") == what and not os.environ.get("FAST"):
    import time
    time.sleep(120)
flag = os.environ.get("FAIL_STEP_FLAG")
if flag and Path(flag).exists() and Path(flag).read_text() == what:
    sys.exit(4)
if what == "prepare":
    (out / "data.csv").write_text("\\n".join(str(i) for i in range(int(sys.argv[2]))))
    store.log_artifact(run, out / "data.csv", "data")
elif what == "train":
    rows = Path(sys.argv[2]).read_text().split()
    (out / "model.txt").write_text(str(sum(int(r) for r in rows)))
    store.log_artifact(run, out / "model.txt", "model")
elif what == "evaluate":
    model = Path(sys.argv[3].removeprefix("file://")) / "model" / "model.txt"
    (out / "score.txt").write_text(f"{sys.argv[2]} {model.read_text()}")
    store.log_artifact(run, out / "score.txt")
else:  # report: an independent sibling of train
    (out / "report.txt").write_text(Path(sys.argv[2]).read_text()[:10])
    store.log_artifact(run, out / "report.txt")
"""


def trial_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(TRIAL_SCRIPT)
    (folder / "MLproject").write_text(
        textwrap.dedent(
            f"""\
            name: trials
            entry_points:
              main:
                parameters:
                  x: {{type: float, default: 0.0}}
                  y: {{type: int, default: 1}}
                  sleep: {{type: float, default: 0}}
                command: "{PY} trial.py {{x}} {{y}} {{sleep}}"
            """
        )
    )
    return folder


def pipeline_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "steps.py").write_text(STEPS_SCRIPT)
    (folder / "MLproject").write_text(
        textwrap.dedent(
            f"""\
            name: chain
            entry_points:
              prepare:
                parameters: {{rows: {{type: int, default: 10}}}}
                command: "{PY} steps.py prepare {{rows}}"
              train:
                parameters: {{data: path}}
                command: "{PY} steps.py train {{data}}"
              evaluate:
                parameters: {{model_run: string, model_uri: uri}}
                command: "{PY} steps.py evaluate {{model_run}} {{model_uri}}"
              report:
                parameters: {{data: path}}
                command: "{PY} steps.py report {{data}}"
            pipelines:
              chain:
                parameters:
                  rows: {{type: int, default: 5}}
                steps:
                  prepare:
                    entry_point: prepare
                    parameters: {{rows: "${{params.rows}}"}}
                  train:
                    entry_point: train
                    parameters: {{data: "${{steps.prepare.artifact_uri}}/data/data.csv"}}
                  evaluate:
                    entry_point: evaluate
                    parameters:
                      model_run: "${{steps.train.run_id}}"
                      model_uri: "${{steps.train.artifact_uri}}"
                  report:
                    entry_point: report
                    parameters: {{data: "${{steps.prepare.artifact_uri}}/data/data.csv"}}
                    depends_on: [prepare]
            """
        )
    )
    return folder


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "mlproj", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "mlproj", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        start_new_session=True,
    )


def children(parent_id: str) -> list[Run]:
    store = get_store()
    parent = store.get_run(parent_id)
    found = store.find_runs_by_tag(
        [parent.info.experiment_id], MLFLOW_PARENT_RUN_ID, parent_id, max_results=10**6
    )
    return sorted(found, key=lambda r: (r.info.start_time, r.run_id))


def parents(kind: str) -> list[Run]:
    store = get_store()
    ids = [e.experiment_id for e in store.list_experiments()]
    return store.find_runs_by_tag(ids, "mlproj.kind", kind, max_results=1000)


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_children(parent_id: str) -> list[Run]:
    return [r for r in children(parent_id) if r.info.status == RunStatus.RUNNING]


def stop(process: subprocess.Popen[str], sig: int | None = signal.SIGTERM) -> tuple[str, str]:
    """Send ``sig`` (None: none, it was signalled already) and collect the output."""
    if sig is not None and process.poll() is None:
        os.killpg(process.pid, sig)
    out, err = process.communicate(timeout=120)
    return out, err
