"""Run keys, --reuse/--force and --retries on real runs of a real project."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

from mlproj.orchestration.run_key import code_state
from mlproj.sources import fetch_project
from mlproj.statuses import RunStatus
from mlproj.tags import TAG_ATTEMPT, TAG_RETRY_OF, TAG_RUN_KEY
from mlproj.tracking import get_store
from tests.orchestration.orch_support import PY, cli, trial_project


def _all_runs() -> list:
    store = get_store()
    return store.search_runs(["0"], max_results=10**6)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def test_every_run_has_a_key_and_reuse_returns_the_finished_run(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    first = cli("run", str(project), "-P", "x=0.5")
    assert first.returncode == 0, first.stderr
    (run,) = _all_runs()
    key = run.tags[TAG_RUN_KEY]
    assert len(key) == 64

    again = cli("run", str(project), "-P", "x=0.5", "--reuse")
    assert again.returncode == 0, again.stderr
    assert f"reusing run {run.run_id}" in again.stderr
    assert len(_all_runs()) == 1  # nothing ran

    # The same value spelled differently is the same parameter; a default given is a default.
    same = cli("run", str(project), "-P", "x=0.50", "-P", "y=1", "--reuse")
    assert f"reusing run {run.run_id}" in same.stderr, same.stderr
    assert len(_all_runs()) == 1


def test_reuse_misses_on_other_params_forced_runs_and_code_changes(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "init")
    assert cli("run", str(project), "--reuse").returncode == 0
    assert cli("run", str(project), "--reuse", "-P", "y=2").returncode == 0
    assert len(_all_runs()) == 2  # another parameter: a miss
    forced = cli("run", str(project), "--force")
    assert forced.returncode == 0 and "reusing" not in forced.stderr
    assert len(_all_runs()) == 3

    clean = code_state(fetch_project(str(project)))
    (project / "trial.py").write_text((project / "trial.py").read_text() + "\n# edited\n")
    dirty = code_state(fetch_project(str(project)))
    assert dirty.startswith(clean + "+") and dirty != clean
    edited = cli("run", str(project), "--reuse")
    assert edited.returncode == 0 and "reusing" not in edited.stderr
    assert len(_all_runs()) == 4
    # ... and the edited state is itself reusable.
    assert "reusing" in cli("run", str(project), "--reuse").stderr
    assert len(_all_runs()) == 4


def test_a_failed_run_is_not_reused(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    failed = cli("run", str(project), "-P", "y=7", FAIL_WHEN_Y="7")
    assert failed.returncode == 1
    rerun = cli("run", str(project), "-P", "y=7", "--reuse", FAIL_WHEN_Y="7")
    assert "reusing" not in rerun.stderr
    assert [r.info.status for r in _all_runs()] == [RunStatus.FAILED, RunStatus.FAILED]


def test_retries_run_again_as_new_runs_linked_to_the_failed_one(tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    project = tmp_path / "flaky"
    project.mkdir()
    (project / "flaky.py").write_text(
        textwrap.dedent(
            f"""\
            import sys
            from pathlib import Path
            counter = Path({str(counter)!r})
            tries = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(tries))
            sys.exit(0 if tries >= 3 else 1)
            """
        )
    )
    (project / "MLproject").write_text(f'entry_points:\n  main:\n    command: "{PY} flaky.py"\n')
    started = time.monotonic()
    done = cli("run", str(project), "--retries", "3", "--retry-delay", "0.2")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 0.2 + 0.4  # backoff: 0.2 s, then 0.4 s
    runs = sorted(_all_runs(), key=lambda r: r.info.start_time)
    assert [r.info.status for r in runs] == ["FAILED", "FAILED", "FINISHED"]
    assert [r.tags[TAG_ATTEMPT] for r in runs] == ["1", "2", "3"]
    assert TAG_RETRY_OF not in runs[0].tags
    assert runs[1].tags[TAG_RETRY_OF] == runs[0].run_id
    assert runs[2].tags[TAG_RETRY_OF] == runs[1].run_id
    assert "retry 1 of 3" in done.stderr


def test_retries_give_up_with_the_last_try_status(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    done = cli(
        "run", str(project), "-P", "y=9", "--retries", "1", "--retry-delay", "0", FAIL_WHEN_Y="9"
    )
    assert done.returncode == 1
    assert "failed" in done.stderr
    assert [r.info.status for r in _all_runs()] == ["FAILED", "FAILED"]


def test_bad_input_is_not_retried_and_opens_no_run(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    done = cli("run", str(project), "-P", "x=abc", "--retries", "3")
    assert done.returncode == 1
    assert "x" in done.stderr and "abc" in done.stderr
    assert "Traceback" not in done.stderr
    assert _all_runs() == []


def test_mlflow_reads_a_store_holding_the_reuse_index(tmp_path: Path) -> None:
    project = trial_project(tmp_path / "proj")
    assert cli("run", str(project)).returncode == 0
    check = subprocess.run(
        [PY, "-c", "import mlflow; print(len(mlflow.search_runs(['0'])))"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().splitlines()[-1] == "1"


def test_the_file_store_key_index_is_checked_against_the_runs(tmp_path: Path) -> None:
    import shutil

    store = get_store()
    experiment = store.create_experiment("index")
    first = store.create_run(experiment, run_name=None, tags={TAG_RUN_KEY: "k1"}, user_id="t")
    second = store.create_run(experiment, run_name=None, tags={}, user_id="t")
    store.log_batch(second.run_id, tags={TAG_RUN_KEY: "k1"})  # a key set later is indexed too
    store.log_batch(first.run_id, tags={TAG_RUN_KEY: "k2"})  # ... and a changed one moves
    found = store.find_runs_by_tag([experiment], TAG_RUN_KEY, "k1")
    assert [r.run_id for r in found] == [second.run_id]
    assert [r.run_id for r in store.find_runs_by_tag([experiment], TAG_RUN_KEY, "k2")] == [
        first.run_id
    ]
    # A run deleted behind the store's back leaves a stale index entry: it is skipped.
    root = Path(store.root)  # type: ignore[attr-defined]
    shutil.rmtree(root / experiment / second.run_id)
    assert store.find_runs_by_tag([experiment], TAG_RUN_KEY, "k1") == []
    # Tags that are not indexed are found by reading each run.
    third = store.create_run(experiment, run_name=None, tags={"team": "x"}, user_id="t")
    assert [r.run_id for r in store.find_runs_by_tag([experiment], "team", "x")] == [third.run_id]


def _data_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "MLproject").write_text(
        textwrap.dedent(
            f"""\
            name: data
            entry_points:
              main:
                parameters: {{data: path}}
                command: "{PY} -c 'import sys; print(sys.argv[1])' {{data}}"
            """
        )
    )
    return folder


def test_reuse_keys_local_path_params_by_their_contents(tmp_path: Path) -> None:
    import os

    project = _data_project(tmp_path / "proj")
    data = tmp_path / "data.csv"
    data.write_text("1,2,3\n")
    stat = data.stat()
    first = cli("run", str(project), "-P", f"data={data}", "--reuse")
    assert first.returncode == 0, first.stderr
    (original,) = _all_runs()
    assert "reusing" in cli("run", str(project), "-P", f"data={data}", "--reuse").stderr

    # Other data under the same path, same size and modification time: not the same run.
    data.write_text("4,5,6\n")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = cli("run", str(project), "-P", f"data={data}", "--reuse")
    assert changed.returncode == 0 and "reusing" not in changed.stderr, changed.stderr
    assert len(_all_runs()) == 2
    newer = next(r for r in _all_runs() if r.run_id != original.run_id)
    assert newer.tags[TAG_RUN_KEY] != original.tags[TAG_RUN_KEY]
    assert (
        f"reusing run {newer.run_id}"
        in cli("run", str(project), "-P", f"data={data}", "--reuse").stderr
    )
    # The first contents again: the first run.
    data.write_text("1,2,3\n")
    back = cli("run", str(project), "-P", f"data={data}", "--reuse")
    assert f"reusing run {original.run_id}" in back.stderr, back.stderr
    assert len(_all_runs()) == 2


def test_reuse_keys_a_folder_path_param_by_every_file_in_it(tmp_path: Path) -> None:
    project = _data_project(tmp_path / "proj")
    folder = tmp_path / "dataset"
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "a.txt").write_text("a")
    assert cli("run", str(project), "-P", f"data={folder}", "--reuse").returncode == 0
    assert "reusing" in cli("run", str(project), "-P", f"data={folder}", "--reuse").stderr
    (folder / "part" / "a.txt").write_text("b")  # a nested file's contents
    assert "reusing" not in cli("run", str(project), "-P", f"data={folder}", "--reuse").stderr
    (folder / ".extra").write_text("c")  # a new (hidden) file
    assert "reusing" not in cli("run", str(project), "-P", f"data={folder}", "--reuse").stderr
    assert len(_all_runs()) == 3
