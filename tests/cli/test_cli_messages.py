"""What the CLI says to a newcomer: undeclared parameters, and where `runs list` looked."""

from __future__ import annotations

from pathlib import Path

from mlproj.tracking import get_store
from tests.cli.cli_support import EXAMPLE, run_cli


def test_undeclared_parameter_warns_once_then_passes_it_on_as_mlflow_does() -> None:
    done = run_cli("run", str(EXAMPLE), "--env-manager", "local", "-P", "alpa=0.3")
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"mlproj: warning: entry point 'main' of {EXAMPLE / 'MLproject'} declares no parameter "
        "'alpa' (declared: alpha, epochs, greeting). Did you mean 'alpha'? "
        "Passing on `--alpa 0.3`, as MLflow does"
    ]
    # The warning comes before the run starts; the script then refuses the argument.
    assert done.stderr.index("warning") < done.stderr.index("unrecognized arguments: --alpa 0.3")
    assert done.returncode == 1
    store = get_store()
    (run,) = store.search_runs([e.experiment_id for e in store.list_experiments()])
    assert run.params["alpa"] == "0.3" and run.info.status == "FAILED"


def test_undeclared_parameter_warning_survives_quiet() -> None:
    done = run_cli("run", str(EXAMPLE), "-e", "fail", "--env-manager", "local", "-q", "-P", "x=1")
    assert done.stderr.splitlines()[0].startswith("mlproj: warning: entry point 'fail' of ")
    assert "declares no parameter 'x' (declared: none). Passing on `--x 1`" in done.stderr
    assert "mlproj: running" not in done.stderr  # --quiet hides the status lines


def test_script_entry_points_take_any_parameter_without_a_warning(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("import sys; print(sys.argv[1:])\n")
    done = run_cli("run", str(tmp_path), "-e", "job.py", "-P", "lr=0.1")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert "['--lr', '0.1']" in done.stdout


def test_runs_list_without_runs_says_where_it_looked(tmp_path: Path) -> None:
    empty = tmp_path / "empty-store"
    done = run_cli("runs", "list", "--tracking-uri", str(empty))
    assert done.returncode == 0
    assert done.stderr.strip() == (
        f"No experiments in tracking store {empty.as_uri()}; point at another store with "
        "--tracking-uri or MLFLOW_TRACKING_URI."
    )
    store = get_store(empty.as_uri())
    demo, other = store.resolve_experiment("demo"), store.resolve_experiment("other")
    done = run_cli("runs", "list", "--tracking-uri", str(empty), "--status", "failed")
    message = done.stderr.strip()
    assert message.startswith("No runs with status FAILED in experiments ")
    assert f"'demo' ({demo})" in message and f"'other' ({other})" in message
    assert message.endswith(
        f" of tracking store {empty.as_uri()}; point at another store with --tracking-uri or "
        "MLFLOW_TRACKING_URI, or at another experiment with --experiment-name."
    )
    done = run_cli("runs", "list", "--tracking-uri", str(empty), "--experiment-name", "demo")
    assert done.stderr.strip().startswith(f"No runs in experiment 'demo' ({demo}) of tracking")


def test_a_sweep_warns_once_of_an_undeclared_parameter_then_passes_it_on() -> None:
    done = run_cli("sweep", str(EXAMPLE), "-P", "alpa=0.1,0.2", "--env-manager", "local")
    lines = done.stderr.splitlines()
    warnings = [line for line in lines if "warning" in line]
    assert warnings == [
        f"mlproj: warning: entry point 'main' of {EXAMPLE / 'MLproject'} declares no parameter "
        "'alpa' (declared: alpha, epochs, greeting). Did you mean 'alpha'? "
        "Passing on `--alpa ...`, as MLflow does"
    ]  # once, not once per trial
    assert lines.index(warnings[0]) < next(i for i, t in enumerate(lines) if "2 trials" in t)
    assert done.returncode == 1  # each trial's script refuses --alpa, as with mlflow run
    store = get_store()
    runs = store.search_runs([e.experiment_id for e in store.list_experiments()])
    trials = sorted(r.params.get("alpa", "") for r in runs if r.info.run_name.startswith("trial"))
    assert trials == ["0.1", "0.2"]


def test_a_pipeline_parameter_typo_names_the_closest(tmp_path: Path) -> None:
    project = EXAMPLE.parent / "orchestration"
    done = run_cli("pipeline", "run", "-p", str(project), "-P", "rowz=10")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mlproj: error: Pipeline 'regression' ({project / 'MLproject'}) has no parameter "
        "'rowz' (did you mean 'rows'?); its parameters: rows, lr"
    ]


def test_runs_list_in_a_new_folder_names_the_default_store_and_makes_nothing(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    folder = tmp_path / "fresh"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "list"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        f"No experiments in tracking store sqlite:///{folder / 'mlflow.db'}; point at another "
        "store with --tracking-uri or MLFLOW_TRACKING_URI."
    )
    assert list(folder.iterdir()) == []  # looking made no mlflow.db
