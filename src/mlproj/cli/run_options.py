"""The options of ``mlproj run``, declared once as data (see :mod:`mlproj.cli.option_table`):
click's command is built from them, and :func:`parse_run_args` reads a plain command line
without click.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlproj.cli.option_table import FLAG, MULTIPLE, SWITCH, Option, OptionTable, Parsed

RUN_OPTIONS: tuple[Option, ...] = (
    Option("entry_point", ("-e", "--entry-point"), "Entry point to run.", default="main",
           show_default=True),
    Option("version", ("-v", "--version"), "Git branch, tag or commit (short SHAs too)."),
    Option("params", ("-P", "--param-list"),
           "An entry point parameter, e.g. -P alpha=0.5; repeatable.", kind=MULTIPLE,
           metavar="NAME=VALUE"),
    Option("docker_args", ("-A", "--docker-args"),
           "A `docker run` option, e.g. -A gpus=all or -A privileged; repeatable.",
           kind=MULTIPLE, metavar="NAME[=VALUE]"),
    Option("experiment_name", ("--experiment-name",), "Experiment name, created when missing.",
           envvar="MLFLOW_EXPERIMENT_NAME"),
    Option("experiment_id", ("--experiment-id",), "Experiment id.",
           envvar="MLFLOW_EXPERIMENT_ID"),
    Option("backend", ("-b", "--backend"),
           "local, slurm, ray, kubernetes, databricks or a plugin.", default="local",
           show_default=True),
    Option("backend_config", ("-c", "--backend-config"),
           "JSON string, or path to a .json file."),
    Option("env_manager", ("--env-manager",),
           "local, uv, virtualenv or conda (default: from the project)."),
    Option("storage_dir", ("--storage-dir",), "Where remote `path` parameters are downloaded.",
           envvar="MLFLOW_TMP_DIR"),
    Option("run_id", ("--run-id",),
           "Re-enter this RUNNING run (an id or a unique prefix) instead of creating one."),
    Option("run_name", ("--run-name",), "Name of the new run."),
    Option("build_image", ("--build-image",),
           "Docker projects: build an image with the project inside.", kind=FLAG,
           default=False),
    Option("tracking_uri", ("--tracking-uri",),
           "Tracking store (default: MLFLOW_TRACKING_URI, else ./mlruns if it holds "
           "runs, else sqlite:///mlflow.db, as MLflow)."),
    Option("wait", ("--wait",), "Wait for the run to end (default: yes, except on databricks).",
           kind=SWITCH, off_flags=("--no-wait",)),
    Option("timeout", ("--timeout",), "Stop the run after this long (local backend).",
           metavar="SECONDS", number=("float", 0.0, True)),
    Option("reuse", ("--reuse",),
           "--reuse: if a FINISHED run with the same code, entry point, parameters and "
           "environment exists in the experiment, return it without running; --force: run "
           "(default).", kind=SWITCH, off_flags=("--force",), default=False),
    Option("retries", ("--retries",), "Try a failed run again, N times.", default=0,
           number=("int", 0, False)),
    Option("retry_delay", ("--retry-delay",),
           "Wait before the first retry; doubled for each next one.", default=1.0,
           show_default=True, metavar="SECONDS", number=("float", 0.0, False)),
    Option("quiet", ("-q", "--quiet"),
           "No mlproj status or progress lines (warnings and errors still show).", kind=FLAG,
           default=False),
)  # fmt: skip

RUN_TABLE = OptionTable(RUN_OPTIONS, uri_required=True)


def parse_run_args(args: list[str], environ: Mapping[str, str] | None = None) -> Parsed | None:
    """``mlproj run``'s arguments (after ``run``) as click would read them, or None when click
    must read them itself."""
    return RUN_TABLE.parse(args, environ)
