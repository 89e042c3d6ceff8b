"""``mlproj sweep``: run an entry point over a grid, random draws or an Optuna study.

Click-free like ``mlproj run`` (a sweep starts often, from scripts and CI): the options are
declared here as data, :mod:`mlproj.cli.main` builds the click command from them, and a plain
command line is read without click (:mod:`mlproj.cli.entry`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlproj.cli.option_table import FLAG, MULTIPLE, Option, OptionTable, Parsed, UsageProblem
from mlproj.cli.startup import one_line_when_stopped

if TYPE_CHECKING:
    from mlproj.orchestration.sweeps import SweepSpec

SWEEP_HELP = """Run the project at URI once per trial, each trial a child run of one parent run.

\b
Examples:
  mlproj sweep . -e train -P lr=0.1,0.01 -P depth=[2,4,8] --max-parallel 2
  mlproj sweep . -e train -P lr='loguniform(1e-4,1e-1)' --method random --max-runs 20
  mlproj sweep . -e train -f sweep.yaml --method optuna --metric loss --seed 1
  mlproj sweep --resume <parent-run-id>

A failed trial does not stop the sweep (--max-failures does). Ctrl-C, SIGTERM or
`mlproj runs cancel <parent>` stop every running trial (KILLED), then the parent.
"""

SWEEP_OPTIONS: tuple[Option, ...] = (
    Option("entry_point", ("-e", "--entry-point"), "Entry point (default: main)."),
    Option("version", ("-v", "--version"), "Git branch, tag or commit."),
    Option("params", ("-P", "--param"),
           "lr=0.1,0.01 | depth=[2,4,8] | n=range(1,10) | x=uniform(0,1) | "
           "x=loguniform(1e-5,1e-1) | k=int_uniform(1,9) | c=choice(a,b) | a fixed value.",
           kind=MULTIPLE, metavar="NAME=SPEC"),
    Option("sweep_file", ("-f", "--file"), "Sweep file (W&B shape, YAML)."),
    Option("method", ("--method",), "How trials are chosen (default: grid).",
           choices=("grid", "random", "optuna")),
    Option("max_runs", ("--max-runs",), "Run cap.", number=("int", 1, False)),
    Option("seed", ("--seed",), "Seed of random draws and of Optuna's TPE.",
           number=("int", -float("inf"), False)),
    Option("metric", ("--metric",), "Metric the trials log, to rank and optimise."),
    Option("goal", ("--goal",), "Best is the lowest or highest --metric (default: minimize).",
           choices=("minimize", "maximize")),
    Option("max_parallel", ("--max-parallel",), "Trials at once.", number=("int", 1, False)),
    Option("max_failures", ("--max-failures",), "Stop after this many.",
           number=("int", 1, False)),
    Option("gpus", ("--gpus",), "Devices, e.g. 0,1,3: one per running trial."),
    Option("retries", ("--retries",), "Retries per trial.", number=("int", 0, False)),
    Option("retry_delay", ("--retry-delay",), "Wait before a retry.",
           metavar="SECONDS", number=("float", 0.0, False)),
    Option("reuse", ("--reuse",), "Reuse FINISHED runs with equal keys.", kind=FLAG,
           default=False),
    Option("resume_id", ("--resume",), "Continue this sweep (its id, or a unique prefix of it).",
           metavar="PARENT_RUN_ID"),
    Option("experiment_name", ("--experiment-name",), "Experiment of the runs (created if new).",
           envvar="MLFLOW_EXPERIMENT_NAME"),
    Option("experiment_id", ("--experiment-id",), "Experiment id.",
           envvar="MLFLOW_EXPERIMENT_ID"),
    Option("backend", ("-b", "--backend"), "local (default), slurm, ray, kubernetes, ..."),
    Option("backend_config", ("-c", "--backend-config"), "JSON string or .json file."),
    Option("env_manager", ("--env-manager",), "local, uv, virtualenv or conda."),
    Option("run_name", ("--run-name",), "Name of the parent run."),
    Option("tracking_uri", ("--tracking-uri",), "Tracking store."),
    Option("quiet", ("-q", "--quiet"), "No progress or status lines.", kind=FLAG,
           default=False),
)  # fmt: skip

SWEEP_TABLE = OptionTable(SWEEP_OPTIONS, uri_required=False)


def parse_sweep_args(args: list[str], environ: Mapping[str, str] | None = None) -> Parsed | None:
    """``mlproj sweep``'s arguments (after ``sweep``) as click would read them, or None."""
    return SWEEP_TABLE.parse(args, environ)


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageProblem(f"Invalid -P {item!r}: use -P name=SPEC")
        if name in parsed:
            raise UsageProblem(f"Repeated parameter: {name!r}")
        parsed[name] = value
    return parsed


def execute_sweep(values: Mapping[str, Any], from_env: frozenset[str]) -> None:
    """Run the sweep ``mlproj sweep`` was asked for; ``from_env`` as for ``mlproj run``."""
    from mlproj import report
    from mlproj.api import load_backend_config
    from mlproj.cli.run_exec import one_experiment
    from mlproj.local_run.supervisor import signals_cancel
    from mlproj.orchestration import sweeps

    uri: str | None = values["uri"]
    params: tuple[str, ...] = values["params"]
    sweep_file: str | None = values["sweep_file"]
    backend_config: str | None = values["backend_config"]
    quiet: bool = values["quiet"]
    reporter = report.Reporter(quiet=quiet)
    log = reporter.log
    progress = reporter.updates_in_place()

    with report.using(reporter):
        if values["resume_id"] is not None:
            if uri or params or sweep_file:
                raise UsageProblem("--resume takes the parent run id (no URI, -P or -f)")
        elif uri is None:
            raise UsageProblem("Give the project URI (or --resume PARENT_RUN_ID)")
        experiment_name, experiment_id = one_experiment(
            values["experiment_name"], values["experiment_id"], from_env
        )
        cli_pairs = _pairs(params)
        with one_line_when_stopped("sweep"):
            if values["resume_id"] is not None:
                from mlproj.tracking import get_store
                from mlproj.tracking.run_ids import resolve_run_id

                store = get_store(values["tracking_uri"])
                running = sweeps.resume_sweep(
                    resolve_run_id(store, values["resume_id"]),  # a short id is enough
                    backend_config=load_backend_config(backend_config) if backend_config else None,
                    tracking_uri=values["tracking_uri"],
                    log=log,
                    progress=progress,
                    max_parallel=values["max_parallel"],
                )
            else:
                assert uri is not None
                spec = _new_spec(uri, values, cli_pairs)
                running = sweeps.start_sweep(
                    spec,
                    experiment_name=experiment_name,
                    experiment_id=experiment_id,
                    tracking_uri=values["tracking_uri"],
                    run_name=values["run_name"],
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


def _new_spec(uri: str, values: Mapping[str, Any], cli_pairs: dict[str, str]) -> SweepSpec:
    """The sweep's spec from its file (-f) and the command line, which wins."""
    from mlproj.api import load_backend_config
    from mlproj.orchestration import sweeps
    from mlproj.records import field_names

    spec_values: dict[str, Any] = {}
    if values["sweep_file"]:
        spec_values.update(sweeps.load_sweep_file(values["sweep_file"]))
    cli_space = sweeps.parse_cli_parameters(cli_pairs)
    spec_values["parameters"] = {**spec_values.get("parameters", {}), **cli_space}
    given = {
        name: values[name]
        for name in ("entry_point", "version", "method", "max_runs", "seed",
                     "metric", "goal", "max_parallel", "max_failures", "retries",
                     "retry_delay", "backend", "env_manager")
    }  # fmt: skip
    spec_values.update({k: v for k, v in given.items() if v is not None})
    if values["gpus"]:
        gpus = values["gpus"].split(",")
        spec_values["gpus"] = tuple(g.strip() for g in gpus if g.strip())
    if values["backend_config"]:
        spec_values["backend_config"] = load_backend_config(values["backend_config"])
    spec_values["reuse"] = values["reuse"]
    known = field_names(sweeps.SweepSpec)
    return sweeps.SweepSpec(uri=uri, **{k: v for k, v in spec_values.items() if k in known})


def _print_summary(running: Any, quiet: bool) -> None:
    from mlproj.orchestration.sweeps import summary_rows
    from mlproj.report import print_table

    if quiet:
        return
    metric = running.spec.metric or "METRIC"
    print_table(("TRIAL", "RUN ID", "STATUS", metric.upper(), "PARAMS"), summary_rows(running))
