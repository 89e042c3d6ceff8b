"""Pipelines declared in the MLproject, on real runs: artifacts passed between steps, reuse,
failures that stop only what depends on them, cancel and resume; and MLflow still loads and
runs the file."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

from orch_support import (
    PY,
    children,
    cli,
    parents,
    pipeline_project,
    running_children,
    start_cli,
    stop,
    wait_for,
)

import mlproj
from mlproj.statuses import RunStatus
from mlproj.tags import TAG_KIND, TAG_PIPELINE_STEP_PREFIX, TAG_STEP
from mlproj.tracking import get_store


def _steps(parent_id: str) -> dict[str, list]:
    by_step: dict[str, list] = {}
    for run in children(parent_id):
        by_step.setdefault(run.tags[TAG_STEP], []).append(run)
    return by_step


def _artifact(run_id: str, path: str) -> str:
    folder = get_store().local_artifact_dir(run_id)
    assert folder is not None
    return (folder / path).read_text()


def _all_runs() -> list:
    return get_store().search_runs(["0"], max_results=10**6)


def test_three_steps_pass_an_artifact_and_a_run_id(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path / "proj")
    done = cli("pipeline", "run", "-p", str(project), "--max-parallel", "2")
    assert done.returncode == 0, done.stderr
    (parent,) = parents("pipeline")
    assert parent.info.status == RunStatus.FINISHED
    steps = _steps(parent.run_id)
    assert sorted(steps) == ["evaluate", "prepare", "report", "train"]
    assert all(len(runs) == 1 for runs in steps.values())
    assert all(r[0].info.status == RunStatus.FINISHED for r in steps.values())
    assert all(r[0].tags[TAG_KIND] == "step" for r in steps.values())
    train = steps["train"][0]
    # evaluate got train's run id and read train's artifact: 0+1+2+3+4 rows of prepare.
    assert _artifact(steps["evaluate"][0].run_id, "score.txt") == f"{train.run_id} 10"
    assert train.params["data"].endswith("/artifacts/data/data.csv")
    dag = _artifact(parent.run_id, "pipeline.txt")
    assert "train     entry point train  <- prepare" in dag
    for name, runs in steps.items():
        assert parent.tags[TAG_PIPELINE_STEP_PREFIX + name] == runs[0].run_id
    assert "STEP" in done.stdout and "FINISHED" in done.stdout


def test_running_again_reuses_every_step_and_a_change_reruns_downstream(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path / "proj")
    assert cli("pipeline", "run", "chain", "-p", str(project)).returncode == 0
    assert len(_all_runs()) == 5  # parent + 4 steps
    again = cli("pipeline", "run", "-p", str(project))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(reused)") == 4
    assert len(_all_runs()) == 6  # only the new parent

    # --from train: train and evaluate again; prepare and report reused.
    from_train = cli("pipeline", "run", "-p", str(project), "--from", "train")
    assert from_train.returncode == 0, from_train.stderr
    newest = max(parents("pipeline"), key=lambda r: r.info.start_time)
    assert sorted(_steps(newest.run_id)) == ["evaluate", "train"]

    # Another pipeline parameter: prepare changes, so everything after it runs again.
    changed = cli("pipeline", "run", "-p", str(project), "-P", "rows=6")
    assert changed.returncode == 0, changed.stderr
    newest = max(parents("pipeline"), key=lambda r: r.info.start_time)
    steps = _steps(newest.run_id)
    assert sorted(steps) == ["evaluate", "prepare", "report", "train"]
    train = steps["train"][0]
    assert _artifact(steps["evaluate"][0].run_id, "score.txt") == f"{train.run_id} 15"


def test_a_failed_step_stops_its_dependents_only_and_resume_reruns_from_it(
    tmp_path: Path,
) -> None:
    project = pipeline_project(tmp_path / "proj")
    flag = tmp_path / "fail"
    flag.write_text("train")
    failed = cli("pipeline", "run", "-p", str(project), FAIL_STEP_FLAG=str(flag))
    assert failed.returncode == 1
    assert "mlproj pipeline resume" in failed.stderr
    (parent,) = parents("pipeline")
    assert parent.info.status == RunStatus.FAILED
    steps = _steps(parent.run_id)
    assert steps["train"][0].info.status == RunStatus.FAILED
    assert steps["report"][0].info.status == RunStatus.FINISHED  # an independent sibling
    assert "evaluate" not in steps  # depends on train: not run
    assert "NOT RUN" in failed.stdout

    flag.unlink()
    resumed = cli("pipeline", "resume", parent.run_id, FAIL_STEP_FLAG=str(flag))
    assert resumed.returncode == 0, resumed.stderr
    steps = _steps(parent.run_id)
    assert len(steps["prepare"]) == 1 and len(steps["report"]) == 1  # kept
    assert [r.info.status for r in steps["train"]] == ["FAILED", "FINISHED"]
    assert steps["evaluate"][0].info.status == RunStatus.FINISHED
    assert get_store().get_run(parent.run_id).info.status == RunStatus.FINISHED


def test_sigterm_cancels_the_running_steps_then_resume_finishes(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path / "proj")
    process = start_cli(
        "pipeline", "run", "-p", str(project), "--max-parallel", "2", SLOW_STEP="train"
    )
    wait_for(lambda: len(parents("pipeline")) == 1, what="the parent run")
    parent_id = parents("pipeline")[0].run_id
    wait_for(
        lambda: any(r.tags[TAG_STEP] == "train" for r in running_children(parent_id)),
        what="train running",
    )
    _, err = stop(process, signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM, err
    steps = _steps(parent_id)
    assert steps["train"][0].info.status == RunStatus.KILLED
    assert get_store().get_run(parent_id).info.status == RunStatus.KILLED

    resumed = cli("pipeline", "resume", parent_id, FAST="1")
    assert resumed.returncode == 0, resumed.stderr
    steps = _steps(parent_id)
    assert [r.info.status for r in steps["train"]] == ["KILLED", "FINISHED"]
    assert len(steps["prepare"]) == 1
    assert steps["evaluate"][-1].info.status == RunStatus.FINISHED


def test_python_api_and_show(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path / "proj")
    shown = cli("pipeline", "show", "-p", str(project))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "pipeline chain (parameters: rows=5)"
    order = [line.split()[0] for line in lines[1:]]
    assert order.index("prepare") < order.index("train") < order.index("evaluate")
    assert "  evaluate  entry point evaluate  <- train" in lines
    assert "  report    entry point report  <- prepare" in lines

    result = mlproj.pipeline(str(project), parameters={"rows": 3}, max_parallel=2)
    assert result.status == RunStatus.FINISHED
    train = result.runs["train"]
    assert _artifact(result.runs["evaluate"].run_id, "score.txt") == f"{train.run_id} 3"


def test_pipeline_mistakes_are_one_line_before_any_run(tmp_path: Path) -> None:
    project = tmp_path / "bad"
    project.mkdir()
    base = 'entry_points:\n  main:\n    command: "true"\npipelines:\n  p:\n    steps:\n'
    cases = {
        "      a: {entry_point: main, depends_on: [b]}\n": "refers to step 'b'",
        "      a: {entry_point: main, depends_on: [b]}\n      b: {depends_on: [a]}\n": "cycle",
        '      a: {parameters: {x: "${params.nope}"}}\n': "no parameter 'nope'",
        '      a: {parameters: {x: "${steps.a.bogus}"}}\n': "unknown reference",
    }
    for steps, expected in cases.items():
        (project / "MLproject").write_text(base + steps)
        done = cli("pipeline", "run", "-p", str(project))
        assert done.returncode == 1
        assert expected in done.stderr, done.stderr
        assert "MLproject" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    unknown = pipeline_project(tmp_path / "proj")
    bad_param = cli("pipeline", "run", "-p", str(unknown), "-P", "colour=red")
    assert bad_param.returncode == 1 and "no parameter 'colour'" in bad_param.stderr
    assert _all_runs() == []


def test_mlflow_loads_and_runs_an_mlproject_with_pipelines(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path / "proj")
    script = textwrap.dedent(
        f"""\
        from mlflow.projects._project_spec import load_project
        import mlflow.projects
        spec = load_project({str(project)!r})
        print(sorted(spec._entry_points))
        run = mlflow.projects.run({str(project)!r}, entry_point="prepare",
                                  parameters={{"rows": 3}}, env_manager="local")
        print(run.get_status())
        """
    )
    done = subprocess.run(
        [PY, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "['evaluate', 'prepare', 'report', 'train']" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "FINISHED"


def test_a_step_runs_an_entry_point_of_another_project_at_a_version(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters: {data: path}\n"
        f'    command: "{PY} -c \\"import sys; print(open(sys.argv[1]).read())\\" {{data}}"\n'
    )
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "stable"], cwd=other, check=True)
    subprocess.run([*git, "add", "."], cwd=other, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=other, check=True)
    subprocess.run([*git, "tag", "v1"], cwd=other, check=True)
    # A later commit breaks it: the step asks for v1.
    (other / "MLproject").write_text('entry_points:\n  main:\n    command: "false"\n')
    subprocess.run([*git, "commit", "-qam", "broken"], cwd=other, check=True)
    project = pipeline_project(tmp_path / "proj")
    text = (project / "MLproject").read_text()
    text += (
        f"      show:\n        uri: {other.as_uri()}\n        version: v1\n"
        '        parameters: {data: "${steps.prepare.artifact_uri}/data/data.csv"}\n'
    )
    (project / "MLproject").write_text(text)
    done = cli("pipeline", "run", "-p", str(project))
    assert done.returncode == 0, done.stderr
    (parent,) = parents("pipeline")
    show = _steps(parent.run_id)["show"][0]
    assert show.info.status == RunStatus.FINISHED
    assert show.tags["mlflow.source.git.commit"] != ""
    assert "0\n1\n2\n3\n4" in _artifact(show.run_id, "mlproj/output.log")
