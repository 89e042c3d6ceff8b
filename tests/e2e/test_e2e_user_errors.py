"""User mistakes through the real CLI and ``mlproj.run``: one clear line naming what is wrong,
the right exit code, and no run opened (or none left RUNNING) because of them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner

import mlproj
from mlproj.backends import registry
from mlproj.backends.base import Backend, SubmitRequest
from mlproj.cli.main import cli
from mlproj.envs.base import LaunchPlan
from mlproj.errors import one_line
from mlproj.local_run.process import ProcessRunner
from mlproj.submitted import SubmittedRun
from mlproj.tracking.base import TrackingStore
from tests.e2e.e2e_support import MakeProject, run_cli
from tests.shared_servers import QuietHandler, serve_folder

MLPROJECT = """
name: errors
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      data: {type: path, default: data.txt}
      name: string
    command: "echo alpha={alpha} name={name}"
  missing_tool:
    command: "no_such_tool_for_mlproj_tests --flag"
"""


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    return make_project(MLPROJECT, data__txt="x\n")


def _run_count(store: TrackingStore) -> int:
    return len(store.search_runs([e.experiment_id for e in store.list_experiments()]))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


Setup = Callable[[Path, Path], list[str]]  # (tmp_path, project) -> CLI arguments


def _bad_utf8(tmp: Path, project: Path) -> list[str]:
    (project / "MLproject").write_bytes(b'entry_points:\n  main:\n    command: "echo \xff"\n')
    return ["run", str(project)]


def _bad_declared_key(tmp: Path, project: Path) -> list[str]:
    (project / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters:\n      'bad key!': string\n"
        "    command: 'echo hi'\n"
    )
    return ["run", str(project), "-P", "bad key!=1"]


def _fake_archive(tmp: Path, project: Path) -> list[str]:
    fake = tmp / "project.tar.gz"
    fake.write_text("not an archive")
    return ["run", str(fake)]


def _missing_git_repo(tmp: Path, project: Path) -> list[str]:
    # git answers with several lines of stderr here.
    return ["run", (tmp / "nowhere" / "repo.git").as_uri()]


CASES: dict[str, tuple[Setup, int, str]] = {
    "missing parameter": (lambda t, p: ["run", str(p)], 1, "missing parameters: 'name'"),
    "bad float": (
        lambda t, p: ["run", str(p), "-P", "name=x", "-P", "alpha=abc"],
        1,
        "Parameter 'alpha' of entry point 'main'",
    ),
    "path param missing": (
        lambda t, p: ["run", str(p), "-P", "name=x", "-P", f"data={t / 'nope.csv'}"],
        1,
        "no such file or directory",
    ),
    "unknown entry point": (lambda t, p: ["run", str(p), "-e", "nope"], 1, "'nope'"),
    "unknown env manager": (
        lambda t, p: ["run", str(p), "-P", "name=x", "--env-manager", "bogus"],
        1,
        "'bogus'",
    ),
    "param without =": (lambda t, p: ["run", str(p), "-P", "name"], 2, "-P"),
    "backend config not JSON": (lambda t, p: ["run", str(p), "-c", "{bad"], 2, "JSON"),
    "timeout zero": (lambda t, p: ["run", str(p), "-P", "name=x", "--timeout", "0"], 2, "0"),
    "timeout negative": (
        lambda t, p: ["run", str(p), "-P", "name=x", "--timeout", "-5"],
        2,
        "--timeout",
    ),
    "unknown experiment id": (
        lambda t, p: ["run", str(p), "-P", "name=x", "--experiment-id", "424242"],
        1,
        "'424242'",
    ),
    "unknown run id": (
        lambda t, p: ["run", str(p), "-P", "name=x", "--run-id", "deadbeef"],
        1,
        "'deadbeef'",
    ),
    "unsupported tracking uri": (
        lambda t, p: ["run", str(p), "-P", "name=x", "--tracking-uri", "ftp://x"],
        1,
        "ftp://x",
    ),
    "MLproject not UTF-8": (_bad_utf8, 1, "MLproject: not valid YAML: invalid leading UTF-8"),
    "param value not UTF-8": (
        lambda t, p: ["run", str(p), "-P", os.fsdecode(b"name=\xff")],
        1,
        "Parameter 'name' of entry point 'main'",
    ),
    "declared param key MLflow refuses": (
        _bad_declared_key,
        1,
        "MLproject: entry_points.main.parameters: Invalid param key 'bad key!'",
    ),
    "given param key MLflow refuses": (
        lambda t, p: ["run", str(p), "-P", "name=x", "-P", "x$y=1"],
        1,
        "Invalid param key 'x$y'",
    ),
    "archive that is not one": (_fake_archive, 1, "Cannot read archive"),
    "Git repository that does not exist": (_missing_git_repo, 1, "Cannot reach Git repository"),
    "unsupported URI scheme": (
        lambda t, p: ["run", "s3://bucket/project.zip"],
        1,
        "Unsupported project URI scheme 's3'",
    ),
    "project folder missing": (lambda t, p: ["run", str(t / "absent")], 1, "does not exist"),
    "runs show unknown id": (lambda t, p: ["runs", "show", "nope"], 1, "'nope'"),
    "runs cancel unknown id": (lambda t, p: ["runs", "cancel", "nope"], 1, "'nope'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_error_is_one_line_with_the_right_exit_code_and_opens_no_run(
    case: str, project: Path, tmp_path: Path, store: TrackingStore
) -> None:
    setup, code, expected = CASES[case]
    args = setup(tmp_path, project)
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    lines = _error_lines(done.stderr)
    if code == 2:  # click usage errors: usage lines, then one "Error: ..." line
        assert lines[-1].startswith("Error:") and expected in lines[-1], done.stderr
    else:
        errors = [line for line in lines if line.startswith("mlproj: error:")]
        assert len(errors) == 1 and expected in errors[0], done.stderr
        # Nothing after the error line: a message must not spill over several lines.
        assert lines[-1] == errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert _run_count(store) == 0


def test_a_home_that_is_a_file_is_a_clear_error(
    project: Path, tmp_path: Path, store: TrackingStore
) -> None:
    home = tmp_path / "home-file"
    home.write_text("")
    archive = tmp_path / "project.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        tarred.add(project, arcname="project")
    done = run_cli("run", str(archive), "-P", "name=x", MLPROJ_HOME=str(home))
    assert done.returncode == 1
    last = _error_lines(done.stderr)[-1]
    assert last.startswith(f"mlproj: error: Cannot create {home / 'archives'} in MLPROJ_HOME")
    assert _run_count(store) == 0


def test_a_missing_tool_fails_the_run_and_says_why(project: Path, store: TrackingStore) -> None:
    done = run_cli("run", str(project), "-e", "missing_tool", "--env-manager", "local")
    assert done.returncode == 1
    assert "command not found" in done.stderr
    last = _error_lines(done.stderr)[-1]
    assert last.startswith("mlproj: error: Run (ID '") and "failed: " in last
    assert "exited with code 127" in last
    [run] = store.search_runs(["0"])
    assert run.info.status == "FAILED"


def test_api_accepts_a_path_uri(project: Path, store: TrackingStore) -> None:
    submitted = mlproj.run(project, parameters={"name": "p"}, env_manager="local")  # type: ignore[arg-type]
    assert store.get_run(submitted.run_id).info.status == "FINISHED"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"backend_config": [1]}, "backend_config must be a dict"),
        ({"parameters": {"name": "a\x00b"}}, "Parameter 'name' of entry point 'main'"),
        ({"parameters": {"name": "x" * 7000}}, "Parameter 'name' of entry point 'main'"),
        ({"uri": 42}, "project uri must be a string or a path"),
    ],
    ids=["backend config list", "NUL in value", "value over MLflow's limit", "uri not text"],
)
def test_api_refuses_bad_arguments_before_opening_a_run(
    kwargs: dict[str, object], expected: str, project: Path, store: TrackingStore
) -> None:
    arguments: dict[str, object] = {
        "uri": str(project),
        "parameters": {"name": "x"},
        "env_manager": "local",
        **kwargs,
    }
    with pytest.raises(mlproj.ExecutionException, match=expected.replace("(", r"\(")) as caught:
        mlproj.run(**arguments)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert _run_count(store) == 0


def test_ctrl_c_in_any_sub_command_exits_130_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command()
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.commands, "interrupted-for-test", interrupted)
    result = CliRunner().invoke(cli, ["interrupted-for-test"])
    assert result.exit_code == 130
    assert "Aborted" not in result.output
    assert result.output.strip() == "mlproj: error: interrupted"


def test_help_lists_every_command_without_truncation() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    commands = done.stdout.split("Commands:")[1]
    run_row = next(line for line in commands.splitlines() if line.strip().startswith("run "))
    assert not run_row.rstrip().endswith("..."), run_row
    for args in (["run", "--help"], ["runs", "--help"], ["runs", "cancel", "--help"]):
        assert run_cli(*args).returncode == 0


def test_one_line_folds_tool_output() -> None:
    text = "fatal: no repo.\n\nPlease check\nthe access rights.\n"
    assert one_line(text) == "fatal: no repo; Please check; the access rights"


def test_unicode_parameters_and_paths_reach_the_command(
    make_project: MakeProject, tmp_path: Path, store: TrackingStore
) -> None:
    folder = make_project(
        """
        entry_points:
          main:
            parameters:
              text: string
              data: path
            command: "python -c 'import sys; print(sys.argv[1:])' {text} {data}"
        """,
        name="prøject ü",
    )
    data = folder / "dätä ☃.txt"
    data.write_text("x")
    done = run_cli(
        "run", str(folder), "--env-manager", "local", "-P", "text=héllo wörld", "-P", f"data={data}"
    )
    assert done.returncode == 0, done.stderr
    assert f"['héllo wörld', '{data}']" in done.stdout
    assert store.search_runs(["0"])[0].params["data"] == os.fspath(data)


def test_credentials_in_the_tracking_uri_never_reach_the_error(project: Path) -> None:
    done = run_cli(
        "run",
        str(project),
        "-P",
        "name=x",
        "--tracking-uri",
        "http://127.0.0.1:1/?token=tok3nvalue",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    assert done.returncode == 1
    assert "Cannot reach" in done.stderr and "tok3nvalue" not in done.stderr


def test_secret_variables_never_reach_an_error(project: Path, store: TrackingStore) -> None:
    done = run_cli(
        "run", str(project), "-P", "alpha=s3cretvalue", "-P", "name=x",
        MLFLOW_TRACKING_TOKEN="s3cretvalue",
    )  # fmt: skip
    assert done.returncode == 1
    assert "Parameter 'alpha'" in done.stderr and "s3cretvalue" not in done.stderr
    assert _run_count(store) == 0


def test_run_id_of_a_run_another_mlproj_supervises_is_refused(
    project: Path, tmp_path: Path, store: TrackingStore
) -> None:
    (project / "MLproject").write_text(
        "entry_points:\n  main:\n    command: 'echo started; sleep 60'\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "--env-manager", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "started"
        [running] = store.search_runs(["0"])
        with pytest.raises(mlproj.ExecutionException, match="is being run by mlproj process"):
            mlproj.run(str(project), run_id=running.run_id, env_manager="local")
        # The first run keeps going, and can still be cancelled.
        assert store.get_run(running.run_id).info.status == "RUNNING"
        assert run_cli("runs", "cancel", running.run_id).returncode == 0
        assert first.wait(timeout=60) != 0
        assert store.get_run(running.run_id).info.status == "KILLED"
    finally:
        first.kill()
        first.wait()
        assert first.stdout is not None
        first.stdout.close()


def test_docker_options_on_a_project_without_docker_env_warn(project: Path) -> None:
    done = run_cli(
        "run", str(project), "-P", "name=x", "--env-manager", "local", "-A", "gpus=all"
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: docker_args/-A and build_image apply only" in done.stderr


class _Hanging(QuietHandler):
    """Never answers in time: an environment build that downloads from it stays busy."""

    def do_GET(self) -> None:
        time.sleep(20)


@pytest.fixture
def hanging_url(tmp_path: Path) -> Iterator[str]:
    with serve_folder(tmp_path, handler=_Hanging) as url:
        yield url


def _start_and_wait_for(args: list[str], marker: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mlproj", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # our signals only, as a terminal would send them
    )
    assert process.stderr is not None
    for line in process.stderr:
        if marker in line:
            return process
    process.wait()
    raise AssertionError(f"{marker!r} never printed; exit code {process.returncode}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT], ids=["SIGTERM", "SIGQUIT"])
def test_a_signal_during_the_environment_build_cancels_the_run(
    sig: signal.Signals, make_project: MakeProject, hanging_url: str, store: TrackingStore
) -> None:
    folder = make_project(
        """
        python_env: python_env.yaml
        entry_points:
          main:
            command: "python -c 'print(1)'"
        """,
        python_env__yaml=f"""
        python: "{sys.version_info.major}.{sys.version_info.minor}"
        dependencies: ["slowpkg @ {hanging_url}/slowpkg-1.0-py3-none-any.whl"]
        """,
    )
    process = _start_and_wait_for(
        ["run", str(folder), "--env-manager", "uv"], "installing dependencies"
    )
    try:
        process.send_signal(sig)
        assert process.wait(timeout=60) == 128 + sig
        assert process.stderr is not None
        assert f"stopped by {sig.name}" in process.stderr.read()
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
    [run] = store.search_runs(["0"])
    assert run.info.status == "KILLED"


def test_an_unexpected_error_is_one_line_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @click.command()
    def broken() -> None:
        raise RuntimeError("cannot open https://user:hunter22@example.com/x\nsecond line")

    monkeypatch.setitem(cli.commands, "broken-for-test", broken)
    monkeypatch.delenv("MLPROJ_DEBUG", raising=False)
    result = CliRunner().invoke(cli, ["broken-for-test"])
    assert result.exit_code == 1
    assert "hunter22" not in result.output and "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("mlproj: error: unexpected RuntimeError: cannot open https://")


def test_a_run_deleted_from_the_store_while_it_runs_says_how_the_command_ended(
    project: Path, tmp_path: Path, store: TrackingStore
) -> None:
    (project / "MLproject").write_text(
        "entry_points:\n  main:\n    command: 'echo started; sleep 3'\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "--env-manager", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = "", ""
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "started"
        [run] = store.search_runs(["0"])
        deadline = time.monotonic() + 30  # the supervisor tags the run once the command runs
        while "mlproj.child.pid" not in store.get_run(run.run_id).tags:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        shutil.rmtree(tmp_path / "mlruns" / "0" / run.run_id)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 1
    last = _error_lines(err)[-1]
    assert last.startswith(f"mlproj: error: The command of run '{run.run_id}' ended (exit code 0)")
    assert "not found" in last


def test_an_experiment_option_wins_over_the_other_ones_environment_variable(
    project: Path, store: TrackingStore
) -> None:
    done = run_cli(
        "run", str(project), "-P", "name=x", "--env-manager", "local",
        "--experiment-name", "chosen", MLFLOW_EXPERIMENT_ID="0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    chosen = store.get_experiment_by_name("chosen")
    assert chosen is not None and len(store.search_runs([chosen.experiment_id])) == 1
    both = run_cli(
        "run", str(project), "-P", "name=x",
        MLFLOW_EXPERIMENT_ID="0", MLFLOW_EXPERIMENT_NAME="chosen",
    )  # fmt: skip
    assert both.returncode == 2
    assert "MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID" in both.stderr


def test_a_missing_shell_fails_the_run_in_one_line(project: Path, store: TrackingStore) -> None:
    done = run_cli(
        "run", str(project), "-P", "name=x", "--env-manager", "local", PATH="/nonexistent"
    )  # fmt: skip
    assert done.returncode == 1
    last = _error_lines(done.stderr)[-1]
    assert last.startswith("mlproj: error: Could not start 'bash'") and "on PATH" in last
    [run] = store.search_runs(["0"])
    assert run.info.status == "FAILED"


def test_timeout_combines_with_a_backend_config_file_of_any_name(
    make_project: MakeProject, tmp_path: Path, store: TrackingStore
) -> None:
    folder = make_project("entry_points:\n  main:\n    command: 'sleep 30'\n")
    config = tmp_path / "local-config"  # no .json suffix: still a file
    config.write_text('{"timeout": 60}')
    done = run_cli(
        "run", str(folder), "--env-manager", "local", "-c", str(config), "--timeout", "0.5"
    )
    assert done.returncode == 1
    assert _error_lines(done.stderr)[-1].endswith("failed: timed out after 0.5 s")
    [run] = store.search_runs(["0"])
    assert run.info.status == "FAILED"


class _LostContact(SubmittedRun):
    """A remote run whose cluster API fails while we wait (no cluster can run here)."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        raise mlproj.ExecutionException("cluster API answered 503 while waiting")

    def get_status(self) -> str:
        return "RUNNING"

    def cancel(self) -> None:
        pass


class _LostContactBackend(Backend[Any]):
    """Stands in for a remote backend (Kubernetes, Databricks): none can run here."""

    name: ClassVar[str] = "lost-contact"

    def submit(self, request: SubmitRequest[Any]) -> SubmittedRun:
        return _LostContact(request.run_id)


def test_a_failure_while_waiting_never_leaves_the_run_running(
    project: Path, store: TrackingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Imported before the patch: a module that first imports get_backend under it would keep
    # the stand-in for the rest of the test session (runs cancel / reap tests then break).
    import mlproj.backends.remote.reattach  # noqa: F401

    monkeypatch.setattr(registry, "get_backend", lambda name: _LostContactBackend())
    with pytest.raises(mlproj.ExecutionException, match="503 while waiting"):
        mlproj.run(str(project), parameters={"name": "x"}, env_manager="local")
    [run] = store.search_runs(["0"])
    assert run.info.status == "FAILED"
    assert run.tags["mlproj.error"] == "cluster API answered 503 while waiting"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_log_that_cannot_be_written_never_blocks_the_command(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Much more output than a pipe holds: if nobody drained it, the command would hang.
    code = "import sys\nfor _ in range(20000): sys.stdout.write('x' * 99 + '\\n')\nprint('done')"
    plan = LaunchPlan(argv=[sys.executable, "-c", code], env=dict(os.environ), cwd=tmp_path)
    runner = ProcessRunner(plan, Path("/dev/full"), echo=True)  # every write: disk full
    runner.start()
    assert runner.wait(timeout=60) == 0
    assert runner.stopped_by is None  # ended by itself, not by the timeout
    assert runner.log_error is not None and "/dev/full" in runner.log_error
    out, err = capfd.readouterr()
    assert out.endswith("done\n")
    assert "output log is incomplete" in err


def test_a_second_ctrl_c_kills_a_command_that_ignores_sigterm_at_once(
    make_project: MakeProject, store: TrackingStore
) -> None:
    folder = make_project(
        "entry_points:\n  main:\n    command: \"trap '' TERM INT; echo started; sleep 120\"\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(folder), "--env-manager", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "MLPROJ_KILL_GRACE": "60"},
        start_new_session=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "started"
        [run] = store.search_runs(["0"])
        deadline = time.monotonic() + 30
        while "mlproj.child.pid" not in store.get_run(run.run_id).tags:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(store.get_run(run.run_id).tags["mlproj.child.pid"])
        process.send_signal(signal.SIGINT)  # SIGTERM to the command, which ignores it
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)  # "stop now": no waiting out the grace period
        assert process.wait(timeout=20) == 130
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
    assert store.get_run(run.run_id).info.status == "KILLED"
    with pytest.raises(ProcessLookupError):
        os.killpg(child, 0)  # the whole process group is gone
