"""With no tracking URI anywhere, mlproj picks the store MLflow (>= 3.7) picks in that folder, and
a newcomer's `mlproj run .` is then seen by MLflow's own defaults (no variable set)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlproj.tracking import default_tracking_uri, get_store, resolve_tracking_uri

pytestmark = pytest.mark.usefixtures("in_tmp_folder")


def _no_mlflow_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def _folders(tmp_path: Path) -> dict[str, Path]:
    cases = {name: tmp_path / name for name in ("empty", "with-exp", "bare-zero", "only-trash")}
    for folder in cases.values():
        folder.mkdir()
    (cases["with-exp"] / "mlruns" / "0").mkdir(parents=True)
    (cases["with-exp"] / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    (cases["bare-zero"] / "mlruns" / "0").mkdir(parents=True)  # artifacts only, as SQLite leaves
    (cases["only-trash"] / "mlruns" / ".trash" / "1").mkdir(parents=True)
    (cases["only-trash"] / "mlruns" / ".trash" / "1" / "meta.yaml").write_text("name: x\n")
    return cases


def test_the_rule_is_mlflows(tmp_path: Path) -> None:
    cases = _folders(tmp_path)
    ours = {name: default_tracking_uri(folder) for name, folder in cases.items()}
    assert ours["with-exp"] == (cases["with-exp"] / "mlruns").as_uri()
    for name in ("empty", "bare-zero", "only-trash"):
        assert ours[name] == f"sqlite:///{cases[name]}/mlflow.db"
    # Real MLflow, asked in each folder with no MLFLOW_TRACKING_URI, answers the same.
    code = textwrap.dedent(
        """
        import json, os, sys
        import mlflow
        out = {}
        for name, folder in json.loads(sys.argv[1]).items():
            os.chdir(folder)
            out[name] = mlflow.get_tracking_uri()
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps({k: str(v) for k, v in cases.items()})],
        capture_output=True,
        text=True,
        timeout=180,
        env=_no_mlflow_env(),
        check=True,
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: v.replace("file:///", "file:/") for k, v in ours.items()} == {
        k: v.replace("file:///", "file:/") for k, v in theirs.items()
    }


def test_the_environment_and_the_argument_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert type(get_store()).__name__ == "SqliteStore"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path}/other.db"
    assert resolve_tracking_uri("elsewhere") == (tmp_path / "elsewhere").as_uri()
    assert not (tmp_path / "mlflow.db").exists()  # choosing a store creates nothing


PROJECT = """\
name: newcomer
entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 0.5}}
    command: "{python} train.py {{alpha}}"
"""

TRAIN = """\
import os, sys
import mlflow
print("uri", os.environ["MLFLOW_TRACKING_URI"])
mlflow.log_metric("score", 0.75)
print("hello from the project", sys.argv[1])
"""


def test_newcomer_runs_then_mlflow_sees_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "MLproject").write_text(PROJECT.format(python=shlex.quote(sys.executable)))
    (folder / "train.py").write_text(TRAIN)
    env = _no_mlflow_env()

    def mlproj(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlproj", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=folder,
            env=env,
            check=False,
        )

    done = mlproj("run", ".", "-P", "alpha=0.3")
    assert done.returncode == 0, done.stderr
    db = folder / "mlflow.db"
    assert db.is_file() and not (folder / "mlruns" / "0" / "meta.yaml").exists()
    assert f"uri sqlite:///{db}" in done.stdout  # the child got the same, absolute URI

    # MLflow's own defaults in that folder, no variable set: the run, its params, metrics, log.
    code = textwrap.dedent(
        """
        import json
        import mlflow
        from mlflow import MlflowClient
        runs = mlflow.search_runs(output_format="list")
        r = runs[0]
        client = MlflowClient()
        log = client.download_artifacts(r.info.run_id, "mlproj/output.log", ".")
        print(json.dumps({
            "n": len(runs), "status": r.info.status, "params": r.data.params,
            "metrics": r.data.metrics, "log": open(log).read(),
            "artifacts": [f.path for f in client.list_artifacts(r.info.run_id, "mlproj")],
            "uri": mlflow.get_tracking_uri(),
        }))
        """
    )
    seen = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=folder,
        env=env,
        check=False,
    )
    assert seen.returncode == 0, seen.stderr[-3000:]
    out = json.loads(seen.stdout.strip().splitlines()[-1])
    assert out["uri"] == f"sqlite:///{db}"
    assert out["n"] == 1 and out["status"] == "FINISHED"
    assert out["params"] == {"alpha": "0.3"}
    assert out["metrics"] == {"score": 0.75}  # logged by the project's own mlflow, same run
    assert "hello from the project 0.3" in out["log"]
    assert out["artifacts"] == ["mlproj/output.log"]

    # mlproj's own commands find the same store by the same rule.
    listed = mlproj("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert record["status"] == "FINISHED"
    shown = mlproj("runs", "logs", record["run_id"])
    assert "hello from the project 0.3" in shown.stdout


def test_a_folder_with_a_file_store_keeps_it(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    (folder / "mlruns" / "0").mkdir(parents=True)
    (folder / "MLproject").write_text(
        "name: old\nentry_points:\n  main:\n    command: 'echo old-store'\n"
    )
    env = _no_mlflow_env()
    first = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", "."],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env={**env, "MLFLOW_TRACKING_URI": (folder / "mlruns").as_uri()},
        check=False,
    )
    assert first.returncode == 0, first.stderr  # the folder now holds a file-store experiment
    again = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", "."],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env=env,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert not (folder / "mlflow.db").exists()
    runs = get_store((folder / "mlruns").as_uri()).search_runs(["0"])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}


SWEEP_AND_PIPELINE = """\
name: every-command
entry_points:
  main:
    parameters:
      a: {type: int, default: 1}
    command: "echo a={a}"
  second:
    command: "echo second"
pipelines:
  p:
    steps:
      s1: {entry_point: main}
      s2: {entry_point: second, depends_on: [s1]}
"""


def test_sweep_pipeline_and_ui_follow_the_same_rule(tmp_path: Path) -> None:
    """Not only `run` and `runs`: a sweep, a pipeline and `mlproj ui` started with no tracking
    URI anywhere pick the folder's store by MLflow's rule too (the project lies elsewhere)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(SWEEP_AND_PIPELINE)
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    fresh.mkdir()
    old.mkdir()
    env = _no_mlflow_env()
    get_store((old / "mlruns").as_uri()).get_experiment("0")  # a file store's Default experiment
    assert (old / "mlruns" / "0" / "meta.yaml").is_file()
    for folder in (fresh, old):
        for args in (
            ["sweep", str(project), "-P", "a=2,3", "--env-manager", "local", "-q"],  # not a=1: s1
            ["pipeline", "run", "-p", str(project), "--env-manager", "local"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "mlproj", *args],
                capture_output=True, text=True, timeout=300, cwd=folder, env=env, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
    assert not list(project.iterdir())[1:]  # nothing written beside the MLproject
    names = {"sweep-main", "trial-0", "trial-1", "pipeline-p", "s1", "s2"}
    in_db = get_store(f"sqlite:///{fresh / 'mlflow.db'}").search_runs(["0"])
    assert {r.info.run_name for r in in_db} == names
    assert {r.info.status for r in in_db} == {"FINISHED"}
    assert not (old / "mlflow.db").exists()
    in_files = get_store((old / "mlruns").as_uri()).search_runs(["0"])
    assert {r.info.run_name for r in in_files} == names

    # `mlproj ui` says which store it serves before starting MLflow's server: stopped there.
    for folder, expected in ((fresh, f"sqlite:///{fresh / 'mlflow.db'}"),
                             (old, (old / "mlruns").as_uri())):  # fmt: skip
        ui = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "ui"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=folder, env=env,
        )  # fmt: skip
        assert ui.stderr is not None
        first = ui.stderr.readline().strip()
        ui.send_signal(signal.SIGINT)
        ui.communicate(timeout=120)
        assert first == f"mlproj: starting MLflow's UI for {expected}"
