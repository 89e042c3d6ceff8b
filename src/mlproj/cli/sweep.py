"""``mlproj sweep``: run an entry point over a grid, random draws or an Optuna study."""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

import click

from mlproj.cli.startup import one_line_when_stopped


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"Invalid -P {item!r}: use -P name=SPEC")
        if name in parsed:
            raise click.UsageError(f"Repeated parameter: {name!r}")
        parsed[name] = value
    return parsed


def _complete_run_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from mlproj.cli.completion import complete_run_id

    return complete_run_id(ctx, param, incomplete)


@click.command("sweep", short_help="Run an entry point over a grid, random draws or Optuna.")
@click.argument("uri", required=False)
@click.option("-e", "--entry-point", default=None, help="Entry point (default: main).")
@click.option("-v", "--version", default=None, help="Git branch, tag or commit.")
@click.option(
    "-P",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=SPEC",
    help="lr=0.1,0.01 | depth=[2,4,8] | n=range(1,10) | x=uniform(0,1) | "
    "x=loguniform(1e-5,1e-1) | k=int_uniform(1,9) | c=choice(a,b) | a fixed value.",
)
@click.option("-f", "--file", "sweep_file", default=None, help="Sweep file (W&B shape, YAML).")
@click.option(
    "--method",
    type=click.Choice(["grid", "random", "optuna"]),
    default=None,
    help="How trials are chosen (default: grid).",
)
@click.option("--max-runs", type=click.IntRange(min=1), default=None, help="Run cap.")
@click.option("--seed", type=int, default=None, help="Seed of random draws and of Optuna's TPE.")
@click.option("--metric", default=None, help="Metric the trials log, to rank and optimise.")
@click.option(
    "--goal",
    type=click.Choice(["minimize", "maximize"]),
    default=None,
    help="Best is the lowest or highest --metric (default: minimize).",
)
@click.option("--max-parallel", type=click.IntRange(min=1), default=None, help="Trials at once.")
@click.option(
    "--max-failures", type=click.IntRange(min=1), default=None, help="Stop after this many."
)
@click.option("--gpus", default=None, help="Devices, e.g. 0,1,3: one per running trial.")
@click.option("--retries", type=click.IntRange(min=0), default=None, help="Retries per trial.")
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Wait before a retry.",
)
@click.option("--reuse", is_flag=True, default=False, help="Reuse FINISHED runs with equal keys.")
@click.option(
    "--resume",
    "resume_id",
    default=None,
    metavar="PARENT_RUN_ID",
    shell_complete=_complete_run_id,
    help="Continue this sweep (its id, or a unique prefix of it).",
)
@click.option(
    "--experiment-name",
    envvar="MLFLOW_EXPERIMENT_NAME",
    default=None,
    help="Experiment of the runs (created if new).",
)
@click.option("--experiment-id", envvar="MLFLOW_EXPERIMENT_ID", default=None, help="Experiment id.")
@click.option("-b", "--backend", default=None, help="local (default), kubernetes, ...")
@click.option("-c", "--backend-config", default=None, help="JSON string or .json file.")
@click.option("--env-manager", default=None, help="local, uv, virtualenv or conda.")
@click.option("--run-name", default=None, help="Name of the parent run.")
@click.option("--tracking-uri", default=None, help="Tracking store.")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No progress or status lines.")
def sweep_command(
    uri: str | None,
    entry_point: str | None,
    version: str | None,
    params: tuple[str, ...],
    sweep_file: str | None,
    method: str | None,
    max_runs: int | None,
    seed: int | None,
    metric: str | None,
    goal: str | None,
    max_parallel: int | None,
    max_failures: int | None,
    gpus: str | None,
    retries: int | None,
    retry_delay: float | None,
    reuse: bool,
    resume_id: str | None,
    experiment_name: str | None,
    experiment_id: str | None,
    backend: str | None,
    backend_config: str | None,
    env_manager: str | None,
    run_name: str | None,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Run the project at URI once per trial, each trial a child run of one parent run.

    \b
    Examples:
      mlproj sweep . -e train -P lr=0.1,0.01 -P depth=[2,4,8] --max-parallel 2
      mlproj sweep . -e train -P lr='loguniform(1e-4,1e-1)' --method random --max-runs 20
      mlproj sweep . -e train -f sweep.yaml --method optuna --metric loss --seed 1
      mlproj sweep --resume <parent-run-id>

    A failed trial does not stop the sweep (--max-failures does). Ctrl-C, SIGTERM or
    `mlproj runs cancel <parent>` stop every running trial (KILLED), then the parent.
    """
    from mlproj import report
    from mlproj.api import load_backend_config
    from mlproj.local_run.supervisor import signals_cancel
    from mlproj.orchestration import sweeps

    reporter = report.Reporter(quiet=quiet)
    log = reporter.log
    progress = reporter.updates_in_place()

    with report.using(reporter):
        with one_line_when_stopped("sweep"):
            if resume_id is not None:
                if uri or params or sweep_file:
                    raise click.UsageError("--resume takes the parent run id (no URI, -P or -f)")
                from mlproj.cli.support import full_run_id

                running = sweeps.resume_sweep(
                    full_run_id(tracking_uri, resume_id),
                    backend_config=load_backend_config(backend_config) if backend_config else None,
                    tracking_uri=tracking_uri,
                    log=log,
                    progress=progress,
                    max_parallel=max_parallel,
                )
            else:
                if uri is None:
                    raise click.UsageError("Give the project URI (or --resume PARENT_RUN_ID)")
                values: dict[str, Any] = {}
                if sweep_file:
                    values.update(sweeps.load_sweep_file(sweep_file))
                cli_space = sweeps.parse_cli_parameters(_pairs(params))
                values["parameters"] = {**values.get("parameters", {}), **cli_space}
                given = {
                    "entry_point": entry_point,
                    "version": version,
                    "method": method,
                    "max_runs": max_runs,
                    "seed": seed,
                    "metric": metric,
                    "goal": goal,
                    "max_parallel": max_parallel,
                    "max_failures": max_failures,
                    "retries": retries,
                    "retry_delay": retry_delay,
                    "backend": backend,
                    "env_manager": env_manager,
                }
                values.update({k: v for k, v in given.items() if v is not None})
                if gpus:
                    values["gpus"] = tuple(g.strip() for g in gpus.split(",") if g.strip())
                if backend_config:
                    values["backend_config"] = load_backend_config(backend_config)
                values["reuse"] = reuse
                known = {f.name for f in fields(sweeps.SweepSpec)}
                spec = sweeps.SweepSpec(uri=uri, **{k: v for k, v in values.items() if k in known})
                if experiment_name and experiment_id:
                    raise click.UsageError(
                        "Specify only one of --experiment-name or --experiment-id"
                    )
                running = sweeps.start_sweep(
                    spec,
                    experiment_name=experiment_name,
                    experiment_id=experiment_id,
                    tracking_uri=tracking_uri,
                    run_name=run_name,
                    log=log,
                    progress=progress,
                )
            with signals_cancel():
                status = running.run()
        _print_summary(running, quiet)
        log(
            f"sweep {running.parent_run_id} {status}"
            + (f": {running.error}" if running.error else "")
        )
        if status != "FINISHED":
            sys.exit(1)


def _print_summary(running: Any, quiet: bool) -> None:
    from mlproj.cli.runs import print_table
    from mlproj.orchestration.sweeps import summary_rows

    if quiet:
        return
    metric = running.spec.metric or "METRIC"
    print_table(("TRIAL", "RUN ID", "STATUS", metric.upper(), "PARAMS"), summary_rows(running))
