"""`mlproj ui` serves MLflow's own UI on the store `mlproj run` wrote, checked in a real
headless Chromium: the run's name, param and metric are on the pages; Ctrl-C stops it all."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from mlproj.cli.ui import backend_store, free_port, mlflow_server_argv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def child_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def dump_dom(url: str) -> str:
    """The page after its JavaScript ran (MLflow's UI is a React app)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dump_until(url: str, texts: tuple[str, ...], attempts: int = 3) -> str:
    """The page once every text is on it, or the last try: on a loaded machine the UI's requests
    can outlast Chromium's virtual time budget."""
    page = ""
    for _ in range(attempts):
        page = dump_dom(url)
        if all(text in page for text in texts):
            break
    return page


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_the_server_command_and_store() -> None:
    assert mlflow_server_argv()[:3] == [sys.executable, "-m", "mlflow"]  # mlflow is installed
    tool = mlflow_server_argv("mlflow==3.17.2")
    assert tool[1:] == ["tool", "run", "--from", "mlflow==3.17.2", "mlflow"]
    assert Path(tool[0]).name == "uv"
    assert backend_store("file:///x/mlruns") == (
        "file:///x/mlruns",
        {"MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    assert backend_store("sqlite:////x/mlflow.db") == ("sqlite:////x/mlflow.db", {})
    assert 0 < free_port("127.0.0.1") < 65536


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by .ci/run (apt)")
@pytest.mark.parametrize(
    ("mlflow_option", "store"),
    [([], "file"), (["--mlflow", "mlflow==3.17.2"], "sqlite")],
    ids=["installed-mlflow-file-store", "uv-tool-env-sqlite-store"],
)
def test_ui_shows_runs_that_mlproj_recorded(
    tmp_path: Path, mlflow_option: list[str], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store == "sqlite":  # mlproj's default store in a new folder
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters: {alpha: {type: float, default: 0.25}}\n"
        "    command: python log.py {alpha}\n"
    )
    (project / "log.py").write_text("import mlflow\nmlflow.log_metric('rmse', 0.123)\n")
    ran = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "--run-name", "ui-check-run",
         "--env-manager", "local"],
        capture_output=True, text=True, env=child_env(), timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    run_id = re.search(r"run ([0-9a-f]{32}) FINISHED", ran.stderr).group(1)  # type: ignore[union-attr]

    with (tmp_path / "ui.err").open("w") as ui_err:
        ui = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "ui", *mlflow_option],
            stdout=subprocess.PIPE,
            stderr=ui_err,
            text=True,
            env=child_env(),
        )
    try:
        assert ui.stdout is not None
        url = ui.stdout.readline().strip()  # printed once the server listens
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), (tmp_path / "ui.err").read_text()
        runs_page = dump_dom(f"{url}/#/experiments/0/runs")
        assert "ui-check-run" in runs_page
        run_page = dump_dom(f"{url}/#/experiments/0/runs/{run_id}")
        for text in ("ui-check-run", "alpha", "0.25", "rmse", "0.123"):
            assert text in run_page, text
    finally:
        ui.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = ui.wait(timeout=60)
        assert ui.stdout is not None
        ui.stdout.close()
    assert code == 0
    errors = (tmp_path / "ui.err").read_text()
    assert "MLflow UI stopped" in errors
    port = url.rsplit(":", 1)[1]
    leftovers = subprocess.run(
        ["pgrep", "-f", f"--port {port}"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", "the server's process group was not stopped"


NEWCOMER_TRAIN = """\
import sys
import mlflow
for step in range(3):
    mlflow.log_metric("rmse", 0.123 * (3 - step), step=step)
print("newcomerlogline", sys.argv[1])
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by .ci/run (apt)")
def test_mlflow_ui_in_the_same_folder_shows_a_newcomers_run(tmp_path: Path) -> None:
    """Issue 17's "done when": `mlproj run .`, then MLflow's own `mlflow ui` in that folder, no
    variable set: the run, its param, its metric and mlproj's output log are on the pages."""
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: newcomer\nentry_points:\n  main:\n    parameters: {alpha: {type: float, default: 0.5}}\n"
        "    command: python train.py {alpha}\n"
    )
    (folder / "train.py").write_text(NEWCOMER_TRAIN)
    env = {k: v for k, v in child_env().items() if not k.startswith("MLFLOW_")}
    ran = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", ".", "-P", "alpha=0.3"],
        capture_output=True, text=True, env=env, cwd=folder, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    run_id = re.search(r"run ([0-9a-f]{32}) FINISHED", ran.stderr).group(1)  # type: ignore[union-attr]
    assert (folder / "mlflow.db").is_file() and not (folder / "mlruns" / "0" / "meta.yaml").exists()

    port = free_port("127.0.0.1")
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    with (tmp_path / "ui.err").open("w") as ui_err:
        ui = subprocess.Popen(
            [str(mlflow_cli), "ui", "--port", str(port)],
            stdout=ui_err, stderr=subprocess.STDOUT, env=env, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert ui.poll() is None, (tmp_path / "ui.err").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_for(healthy, 240)
        run_page = dump_until(
            f"{url}/#/experiments/0/runs/{run_id}", ("alpha", "0.3", "rmse", "0.123", "output.log")
        )
        for text in ("alpha", "0.3", "rmse", "0.123", "output.log"):
            assert text in run_page, text
        log_page = dump_until(
            f"{url}/#/experiments/0/runs/{run_id}/artifacts/mlproj/output.log", ("newcomerlogline",)
        )
        assert "newcomerlogline" in log_page
        errors = (tmp_path / "ui.err").read_text()
        assert "out-of-date" not in errors and "MLFLOW_ALLOW_FILE_STORE" not in errors
        assert "Using sqlite:///mlflow.db" in errors  # MLflow chose the database by itself
    finally:
        # The server's group: uvicorn workers and MLflow's job consumers outlive its first process.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(ui.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                ui.wait(timeout=30)


def test_ctrl_c_while_the_server_starts_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C the moment after the real server process exists, before `mlproj ui` has it in
    hand: the server (in its own session) is stopped, not left running."""
    from mlproj.cli import ui

    real_popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def popen_then_ctrl_c(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        process = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(process)
        os.kill(os.getpid(), signal.SIGINT)  # delivered before Popen returns to its caller
        return process  # type: ignore[no-any-return]

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)  # the module ui.py calls
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ui.ui_command.main(["--tracking-uri", uri, "--port", "0"], standalone_mode=False)
    (server,) = started
    assert server.poll() is not None  # stopped and waited for
    deadline = time.monotonic() + 60
    while True:  # and its whole group with it
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the server's process group is still running"
        time.sleep(0.2)
    assert "MLflow UI stopped" in capfd.readouterr().err
