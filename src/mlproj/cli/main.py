"""The ``mlproj`` command line.

Sub-commands other than ``run`` live in their own modules and are imported only when used,
so ``mlproj --help`` and ``mlproj run`` stay fast.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from mlproj import __version__

# name -> "module:attribute" of a click command, imported on first use.
_LAZY_COMMANDS = {
    "runs": ("mlproj.cli.runs:runs", "List, inspect, follow, cancel and reap runs."),
    "experiments": ("mlproj.cli.runs:experiments", "List experiments."),
    "envs": ("mlproj.cli.envs:envs_group", "List and prune cached environments."),
    "sources": (
        "mlproj.cli.sources:sources_group",
        "List and clear cached Git repositories and archives.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module_name, attr = _LAZY_COMMANDS[cmd_name][0].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # Ctrl-C in any sub-command: one line and the conventional exit code 130, where click
        # alone would print "Aborted!" and exit 1.
        from mlproj.errors import ExecutionException

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _fail("interrupted", code=130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ExecutionException as exc:
            _fail(str(exc))
        except Exception as exc:
            # A bug of ours, or a library error nobody translated: still one line, without
            # credentials. MLPROJ_DEBUG=1 shows the traceback.
            if os.environ.get("MLPROJ_DEBUG"):
                raise
            from mlproj.errors import one_line
            from mlproj.redaction import scrub_text

            detail = one_line(scrub_text(str(exc))) or "no details"
            _fail(
                f"unexpected {type(exc).__name__}: {detail} "
                "(MLPROJ_DEBUG=1 shows the traceback; please report it)"
            )

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Describe lazy commands without importing them.
        rows = [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        rows += [(name, help_) for name, (_, help_) in _LAZY_COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlproj")
def cli() -> None:
    """Run MLflow Projects reproducibly and fast."""
    from mlproj.cli.sync import replay_journals_quietly

    # Run updates kept while a tracking store was down are sent as soon as mlproj runs again.
    replay_journals_quietly()


def _parse_pairs(values: tuple[str, ...], option: str, *, flags: bool) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep and not flags:
            raise click.UsageError(
                f"Invalid format for {option} parameter: {item!r}. Use {option} name=value."
            )
        if not name:
            raise click.UsageError(f"Invalid format for {option} parameter: {item!r}: empty name.")
        if name in parsed:
            raise click.UsageError(f"Repeated parameter: {name!r}")
        parsed[name] = value if sep else True
    return parsed


def _one_experiment(name: str | None, id_: str | None) -> tuple[str | None, str | None]:
    """An experiment option given on the command line wins over the other one's environment
    variable (MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID); two given the same way clash."""
    if not (name and id_):
        return name, id_
    ctx = click.get_current_context()
    from_env = click.core.ParameterSource.ENVIRONMENT
    name_env = ctx.get_parameter_source("experiment_name") == from_env
    id_env = ctx.get_parameter_source("experiment_id") == from_env
    if name_env and not id_env:
        return None, id_
    if id_env and not name_env:
        return name, None
    where = " (from MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID)" if name_env else ""
    raise click.UsageError(
        f"Specify only one of 'experiment-name' or 'experiment-id' options{where}."
    )


def _parse_backend_config(value: str | None) -> dict[str, Any] | str | None:
    if value is None or value.endswith(".json") or Path(value).is_file():
        return value  # a file: read (and checked) by mlproj.api.load_backend_config
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"Invalid backend config JSON. Parse error: {exc}") from None
    if not isinstance(loaded, dict):
        raise click.UsageError("Invalid backend config JSON: expected a JSON object")
    return loaded


@cli.command("run", short_help="Run an MLflow project: a folder, Git repository or archive.")
@click.argument("uri")
@click.option("-e", "--entry-point", default="main", show_default=True, help="Entry point to run.")
@click.option(
    "-v", "--version", "version", default=None, help="Git branch, tag or commit (short SHAs too)."
)
@click.option(
    "-P",
    "--param-list",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="An entry point parameter, e.g. -P alpha=0.5; repeatable.",
)
@click.option(
    "-A",
    "--docker-args",
    "docker_args",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="A `docker run` option, e.g. -A gpus=all or -A privileged; repeatable.",
)
@click.option(
    "--experiment-name",
    envvar="MLFLOW_EXPERIMENT_NAME",
    default=None,
    help="Experiment name, created when missing.",
)
@click.option("--experiment-id", envvar="MLFLOW_EXPERIMENT_ID", default=None, help="Experiment id.")
@click.option(
    "-b",
    "--backend",
    default="local",
    show_default=True,
    help="local, kubernetes, databricks or a plugin.",
)
@click.option("-c", "--backend-config", default=None, help="JSON string, or path to a .json file.")
@click.option(
    "--env-manager",
    default=None,
    help="local, uv, virtualenv or conda (default: from the project).",
)
@click.option(
    "--storage-dir",
    envvar="MLFLOW_TMP_DIR",
    default=None,
    help="Where remote `path` parameters are downloaded.",
)
@click.option(
    "--run-id", default=None, help="Re-enter this existing RUNNING run instead of creating one."
)
@click.option("--run-name", default=None, help="Name of the new run.")
@click.option(
    "--build-image",
    is_flag=True,
    default=False,
    help="Docker projects: build an image with the project inside.",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="Tracking store (default: MLFLOW_TRACKING_URI, else ./mlruns).",
)
@click.option(
    "--wait/--no-wait",
    "wait",
    default=None,
    help="Wait for the run to end (default: yes, except on databricks).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop the run after this long (local backend).",
)
@click.option("-q", "--quiet", is_flag=True, default=False, help="Print no mlproj status lines.")
def run_command(
    uri: str,
    entry_point: str,
    version: str | None,
    params: tuple[str, ...],
    docker_args: tuple[str, ...],
    experiment_name: str | None,
    experiment_id: str | None,
    backend: str,
    backend_config: str | None,
    env_manager: str | None,
    storage_dir: str | None,
    run_id: str | None,
    run_name: str | None,
    build_image: bool,
    tracking_uri: str | None,
    wait: bool | None,
    timeout: float | None,
    quiet: bool,
) -> None:
    """Run the project at URI: a folder, a Git repository (URI#subdir) or an archive.

    \b
    Examples:
      mlproj run . -P alpha=0.5
      mlproj run https://github.com/org/repo#examples/train -v v1.2 -e train
      mlproj run project.tar.gz --env-manager uv --timeout 3600

    Exit codes: 0 the run finished, 1 it failed or could not start (the error says why),
    2 wrong command-line usage, 130 Ctrl-C and 143 SIGTERM (the run is then KILLED).
    """
    experiment_name, experiment_id = _one_experiment(experiment_name, experiment_id)
    config = _parse_backend_config(backend_config)
    synchronous = wait if wait is not None else backend != "databricks"

    from mlproj.api import RunOptions, load_backend_config, submit
    from mlproj.errors import ExecutionException

    if timeout is not None:
        try:
            config = {**load_backend_config(config), "timeout": timeout}
        except ExecutionException as exc:
            _fail(str(exc))
    from mlproj.local_run.supervisor import Cancelled, signals_cancel

    def log(line: str) -> None:
        if not quiet:
            click.echo(f"mlproj: {line}", err=True)

    options = RunOptions(
        uri=uri,
        entry_point=entry_point,
        version=version,
        parameters=_parse_pairs(params, "-P", flags=False),
        docker_args=_parse_pairs(docker_args, "-A", flags=True),
        experiment_name=experiment_name,
        experiment_id=experiment_id,
        backend=backend,
        backend_config=config,
        storage_dir=storage_dir,
        synchronous=synchronous,
        run_id=run_id,
        run_name=run_name,
        env_manager=env_manager,
        build_image=build_image,
        tracking_uri=tracking_uri,
        log=log,
    )
    try:
        # A signal at any step (fetch, env build, run) cancels cleanly: no run left RUNNING.
        with signals_cancel():
            submitted = submit(options)
    except ExecutionException as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; the run was cancelled", code=130)
    except Cancelled as stop:
        _fail(
            f"stopped by {signal.Signals(stop.signum).name}; the run was cancelled",
            code=128 + stop.signum,
        )
    if synchronous:
        log(f"run {submitted.run_id} {submitted.get_status()}")
    else:
        log(
            f"run {submitted.run_id} started; "
            f"follow it with `mlproj runs logs --follow {submitted.run_id}`"
        )
        click.echo(submitted.run_id)


def _fail(message: str, code: int = 1) -> NoReturn:
    # One line, no traceback: a multi-line message (a build log tail) is kept as it is.
    click.echo(f"mlproj: error: {message}", err=True)
    sys.exit(code)


def main() -> None:
    cli(prog_name="mlproj")
