"""``mlproj pipeline``: run, resume and show the pipelines declared in an MLproject."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from mlproj.cli.startup import one_line_when_stopped


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"Invalid -P {item!r}: use -P name=value")
        parsed[name] = value
    return parsed


@contextmanager
def _cancellable(what: str) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop every running step (KILLED), then the parent; one line out."""
    from mlproj.local_run.supervisor import signals_cancel

    with one_line_when_stopped(what), signals_cancel():
        yield


def _logger(quiet: bool) -> Callable[[str], None]:
    from mlproj import report

    return report.Reporter(quiet=quiet).log


def _finish(running: Any, quiet: bool) -> None:
    from mlproj.report import print_table

    if not quiet:
        print_table(("STEP", "RUN ID", "STATUS"), running.summary_rows())
    if running.status != "FINISHED":
        _logger(quiet)(
            f"pipeline {running.parent_run_id} {running.status}: {running.error}; continue it "
            f"with `mlproj pipeline resume {running.parent_run_id}`"
        )
        sys.exit(1)
    _logger(quiet)(f"pipeline {running.parent_run_id} FINISHED")


@click.group("pipeline")
def pipeline_group() -> None:
    """Pipelines declared in the MLproject under `pipelines:` (MLflow ignores that key).

    \b
    Examples:
      mlproj pipeline show
      mlproj pipeline run
      mlproj pipeline resume <parent-run-id>
    """


@pipeline_group.command("run")
@click.argument("name", required=False)
@click.option("-p", "--project", "uri", default=".", show_default=True, help="Project URI.")
@click.option("-v", "--version", default=None, help="Git branch, tag or commit.")
@click.option(
    "-P", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter."
)
@click.option("--from", "from_step", default=None, metavar="STEP", help="Run STEP and after.")
@click.option("--force", is_flag=True, default=False, help="Run every step, reuse none.")
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Steps at once (steps that do not depend on each other).",
)
@click.option("--retries", type=click.IntRange(min=0), default=0, help="Retries per step.")
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=1.0,
    metavar="SECONDS",
    help="Wait before a retry.",
)
@click.option(
    "--experiment-name",
    envvar="MLFLOW_EXPERIMENT_NAME",
    default=None,
    help="Experiment of the runs (created if new).",
)
@click.option("--experiment-id", envvar="MLFLOW_EXPERIMENT_ID", default=None, help="Experiment id.")
@click.option(
    "-b", "--backend", default="local", show_default=True, help="local, slurm, ray, kubernetes..."
)
@click.option("-c", "--backend-config", default=None, help="JSON string or .json file.")
@click.option("--env-manager", default=None, help="local, uv, virtualenv or conda.")
@click.option("--run-name", default=None, help="Name of the parent run.")
@click.option("--tracking-uri", default=None, help="Tracking store.")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No status lines or table.")
def run_pipeline(
    name: str | None,
    uri: str,
    version: str | None,
    params: tuple[str, ...],
    from_step: str | None,
    force: bool,
    max_parallel: int,
    retries: int,
    retry_delay: float,
    experiment_name: str | None,
    experiment_id: str | None,
    backend: str,
    backend_config: str | None,
    env_manager: str | None,
    run_name: str | None,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Run pipeline NAME (the only one, when the MLproject declares one).

    \b
    Examples:
      mlproj pipeline run
      mlproj pipeline run regression -P rows=500 --max-parallel 2
      mlproj pipeline run --from fit

    Steps whose key matches a FINISHED run are reused, so running a pipeline again runs only
    what changed; --from STEP runs STEP and everything after it again; --force runs all.
    """
    from mlproj.api import load_backend_config
    from mlproj.orchestration.pipelines import PipelineSpec, start_pipeline

    with _cancellable("pipeline"):
        spec = PipelineSpec(
            uri=uri,
            name=name or "",
            parameters=_pairs(params),
            version=version,
            from_step=from_step,
            force=force,
            max_parallel=max_parallel,
            retries=retries,
            retry_delay=retry_delay,
            backend=backend,
            backend_config=load_backend_config(backend_config) if backend_config else None,
            env_manager=env_manager,
        )
        running = start_pipeline(
            spec,
            experiment_name=experiment_name,
            experiment_id=experiment_id,
            tracking_uri=tracking_uri,
            run_name=run_name,
            log=_logger(quiet),
        )
        running.run()
    _finish(running, quiet)


def _complete_run_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from mlproj.cli.completion import complete_run_id

    return complete_run_id(ctx, param, incomplete)


@pipeline_group.command("resume")
@click.argument("parent_run_id", shell_complete=_complete_run_id)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="Steps at once (default: as the pipeline ran).",
)
@click.option("-c", "--backend-config", default=None, help="Again, if it held secrets.")
@click.option("--tracking-uri", default=None, help="Tracking store.")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No status lines or table.")
def resume(
    parent_run_id: str,
    max_parallel: int | None,
    backend_config: str | None,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Continue a pipeline run: run its failed step and what follows.

    Steps that FINISHED are kept; the parent run is the same.

    \b
    Examples:
      mlproj pipeline resume <parent-run-id>
    """
    from mlproj.api import load_backend_config
    from mlproj.cli.support import full_run_id
    from mlproj.orchestration.pipelines import resume_pipeline

    with _cancellable("pipeline"):
        running = resume_pipeline(
            full_run_id(tracking_uri, parent_run_id),
            backend_config=load_backend_config(backend_config) if backend_config else None,
            tracking_uri=tracking_uri,
            max_parallel=max_parallel,
            log=_logger(quiet),
        )
        running.run()
    _finish(running, quiet)


@pipeline_group.command("show")
@click.argument("name", required=False)
@click.option("-p", "--project", "uri", default=".", show_default=True, help="Project URI.")
@click.option("-v", "--version", default=None, help="Git branch, tag or commit.")
def show(name: str | None, uri: str, version: str | None) -> None:
    """Print the steps in run order, with what each depends on.

    \b
    Examples:
      mlproj pipeline show
      mlproj pipeline show regression -p path/to/project
    """
    from mlproj.orchestration.pipelines import show_pipeline

    with _cancellable("listing"):
        click.echo(show_pipeline(uri, name, version))
