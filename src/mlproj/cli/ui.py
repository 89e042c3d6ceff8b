"""``mlproj ui``: MLflow's own UI on the store mlproj writes to.

The UI is ``mlflow server`` from the installed ``mlflow`` package or, without one, from a
cached uv tool environment (``uv tool run --from mlflow``). It runs in its own process group,
so Ctrl-C (or SIGTERM) stops the server and every worker it started.

An MLflow refuses a SQLite database whose schema revision it does not know ("out-of-date
database schema"): the project's own, newer MLflow may have upgraded ``mlflow.db`` during a
run. So for a SQLite store the MLflow chosen must know the database's revision; an installed
one that does not is passed over for the uv tool env (cached, else the newest MLflow), and when
none knows it the command says so in one line instead of starting a server that would fail.
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
from pathlib import Path

import click

from mlproj.errors import ExecutionException

_START_TIMEOUT = 300.0  # a first `uv tool run` downloads mlflow
_STOP_GRACE = 10.0


def mlflow_server_argv(requirement: str | None = None) -> list[str]:
    """How to start ``mlflow``: this interpreter's package, else one on PATH, else a uv tool
    env; a ``requirement`` (``mlflow==3.17.2``) always means that tool env."""
    return choose_mlflow(requirement, None)[0]


# Exit status 0 when the importable mlflow has the migration argv[1] (a schema revision).
_KNOWS_REVISION = (
    "import importlib.util as u, pathlib, sys; s = u.find_spec('mlflow'); "
    "d = s and s.submodule_search_locations and pathlib.Path("
    "next(iter(s.submodule_search_locations)), 'store', 'db_migrations', 'versions'); "
    "sys.exit(0 if d and any(d.glob(sys.argv[1] + '_*.py')) else 1)"
)


def _knows(probe: list[str], revision: str) -> bool:
    """Whether the MLflow that ``probe`` (a Python command) imports has ``revision``."""
    try:
        done = subprocess.run(
            [*probe, "-c", _KNOWS_REVISION, revision],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_START_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _script_python(script: str) -> str | None:
    """The interpreter of a console script such as ``mlflow`` on PATH (its ``#!`` line)."""
    try:
        with Path(script).open("rb") as handle:
            first = handle.readline(512).decode("utf-8", errors="replace")
    except OSError:
        return None
    words = first[2:].split() if first.startswith("#!") else []
    if words and Path(words[0]).name == "env" and len(words) > 1:
        return shutil.which(words[1])
    return words[0] if words and "python" in Path(words[0]).name else None


def choose_mlflow(requirement: str | None, revision: str | None) -> tuple[list[str], str | None]:
    """The ``mlflow`` command to serve with, and a note when an installed one was passed over.

    ``revision``: the schema revision of the SQLite database to serve (None: no database, or
    another store), which the chosen MLflow must know."""
    from mlproj.envs.python.venv_base import uv_binary

    def tool(spec: str) -> list[str]:
        return [uv_binary(), "tool", "run", "--from", spec, "mlflow"]

    if requirement is not None:
        return tool(requirement), None
    passed_over = None
    if importlib.util.find_spec("mlflow") is not None:
        if revision is None or _knows([sys.executable], revision):
            return [sys.executable, "-m", "mlflow"], None
        passed_over = f"the MLflow of {sys.executable}"
    on_path = shutil.which("mlflow")
    if on_path is not None:
        python = _script_python(on_path)
        if revision is None or (
            python is not None and python != sys.executable and _knows([python], revision)
        ):
            return [on_path], None
        passed_over = passed_over or on_path
    if revision is None:
        return tool("mlflow"), None
    for spec in ("mlflow", "mlflow@latest"):  # the cached tool env, else the newest MLflow
        if _knows([uv_binary(), "tool", "run", "--from", spec, "python"], revision):
            note = None
            if passed_over is not None:
                note = (
                    f"{passed_over} does not know the database's schema (revision {revision}, "
                    f"from a newer MLflow): serving with `uv tool run --from {spec} mlflow`"
                )
            return tool(spec), note
    raise ExecutionException(
        f"No MLflow here knows the schema of this database (revision {revision}: a newer "
        "MLflow, maybe the project's own, upgraded it), and MLflow refuses a schema it does "
        "not know; serve it with that MLflow: mlproj ui --mlflow 'mlflow==VERSION'"
    )


def database_revision(tracking_uri: str) -> str | None:
    """The schema revision of the SQLite database at ``tracking_uri``; None for another store
    or a database not made yet (the server then makes one with its own schema)."""
    import sqlite3

    from mlproj.locations import sqlite_database

    path = sqlite_database(tracking_uri)
    if path is None or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


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
    mlflow, note = choose_mlflow(mlflow_spec, database_revision(store_uri))
    if note is not None:
        click.echo(f"mlproj: {note}", err=True)
    argv = [
        *mlflow,
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


__all__ = [
    "backend_store",
    "choose_mlflow",
    "database_revision",
    "free_port",
    "mlflow_server_argv",
    "ui_command",
]
