"""``mlproj ui``: MLflow's own UI on the store mlproj writes to.

The UI is ``mlflow server`` from the installed ``mlflow`` package or, without one, from a
cached uv tool environment (``uv tool run --from mlflow``). It runs in its own process group,
so Ctrl-C (or SIGTERM) stops the server and every worker it started.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import click

from mlproj.errors import ExecutionException

_START_TIMEOUT = 300.0  # a first `uv tool run` downloads mlflow
_STOP_GRACE = 10.0


def mlflow_server_argv(requirement: str | None = None) -> list[str]:
    """How to start ``mlflow``: this interpreter's package, else one on PATH, else a uv tool
    env; a ``requirement`` (``mlflow==3.17.2``) always means that tool env."""
    if requirement is None:
        if importlib.util.find_spec("mlflow") is not None:
            return [sys.executable, "-m", "mlflow"]
        on_path = shutil.which("mlflow")
        if on_path is not None:
            return [on_path]
    from mlproj.envs.python.venv_base import uv_binary

    return [uv_binary(), "tool", "run", "--from", requirement or "mlflow", "mlflow"]


def backend_store(tracking_uri: str) -> tuple[str, dict[str, str]]:
    """The ``--backend-store-uri`` for the store and the environment the server needs."""
    if tracking_uri.startswith("file:"):
        # MLflow >= 3.13 refuses a file store unless told it is wanted.
        return tracking_uri, {"MLFLOW_ALLOW_FILE_STORE": "true"}
    return tracking_uri, {}


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


@click.command("ui", short_help="Browse the runs in MLflow's own UI.")
@click.option(
    "--tracking-uri",
    default=None,
    help="Store to show (default: the one `mlproj run` writes to).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=0, help="Port (default: a free one).")
@click.option(
    "--mlflow",
    "mlflow_spec",
    default=None,
    metavar="REQUIREMENT",
    help="Serve with this MLflow (e.g. 'mlflow==3.17.2') from a cached uv tool env "
    "(default: the installed mlflow, else the latest in a uv tool env).",
)
@click.option("--open", "open_browser", is_flag=True, default=False, help="Open a browser.")
def ui_command(
    tracking_uri: str | None, host: str, port: int, mlflow_spec: str | None, open_browser: bool
) -> None:
    """Serve MLflow's UI on the tracking store mlproj writes to, until Ctrl-C.

    \b
    Examples:
      mlproj ui
      mlproj ui --tracking-uri sqlite:///mlflow.db --port 5000
    """
    from mlproj.local_run.supervisor import Cancelled, signals_cancel, signals_deferred
    from mlproj.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        click.echo(
            f"mlproj: the runs are on an MLflow server, which serves the UI: {uri}", err=True
        )
        click.echo(uri)
        return
    store_uri, extra_env = backend_store(uri)
    port = port or free_port(host)
    argv = [
        *mlflow_server_argv(mlflow_spec),
        "server",
        "--backend-store-uri",
        store_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # The server's own artifact folder (for new uploads) must not land in the user's folder.
    if store_uri.startswith("file:"):
        from mlproj.tracking import local_store_root

        root = local_store_root(store_uri)
        assert root is not None
        argv += ["--artifacts-destination", (root / ".mlproj-ui-artifacts").as_uri()]
    url = f"http://{host}:{port}"
    click.echo(f"mlproj: starting MLflow's UI for {uri}", err=True)
    # Ctrl-C stops the UI even when started from a script, which leaves SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    process: subprocess.Popen[bytes] | None = None
    try:
        with signals_cancel():
            # A signal while the server starts waits until it is known, so it is stopped
            # rather than left running in its own session.
            with signals_deferred() as pending:
                # Its own session: the server and its workers are stopped as one group. Its
                # output goes to stderr, so stdout carries only the URL (for scripts).
                process = subprocess.Popen(
                    argv,
                    env={**os.environ, **extra_env},
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=sys.stderr.fileno(),
                )
            if pending:
                raise KeyboardInterrupt if signal.SIGINT in pending else Cancelled(pending[0])
            _wait_until_listening(process, host, port)
            click.echo(f"mlproj: MLflow UI at {url} (Ctrl-C stops it)", err=True)
            click.echo(url)
            if open_browser:
                import webbrowser

                webbrowser.open(url)
            code = process.wait()
    except (KeyboardInterrupt, Cancelled):
        if process is not None:
            _stop(process)
        click.echo("mlproj: MLflow UI stopped", err=True)
        return
    except BaseException:
        if process is not None:
            _stop(process)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    raise ExecutionException(f"mlflow server exited with code {code}; its output is above")


def _wait_until_listening(process: subprocess.Popen[bytes], host: str, port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not _listening(host, port):
        code = process.poll()
        if code is not None:
            raise ExecutionException(
                f"mlflow server exited with code {code} before serving; its output is above"
            )
        if time.monotonic() > deadline:
            _stop(process)
            raise ExecutionException(
                f"mlflow server did not listen on {host}:{port} within {_START_TIMEOUT:g} s"
            )
        time.sleep(0.2)


__all__ = ["backend_store", "free_port", "mlflow_server_argv", "ui_command"]
