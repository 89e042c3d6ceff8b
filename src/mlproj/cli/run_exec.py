"""What ``mlproj run`` does with its parsed options; click-free, so the fast path can use it.

Usage mistakes found here raise :class:`~mlproj.cli.option_table.UsageProblem` before anything
runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlproj.cli.option_table import UsageProblem
from mlproj.cli.startup import fail, one_line_when_stopped


def execute_run(values: Mapping[str, Any], from_env: frozenset[str]) -> None:
    """Run what ``mlproj run`` was asked; ``from_env`` names options set by environment
    variables (MLFLOW_EXPERIMENT_NAME and the like), which yield to the command line."""
    experiment_name, experiment_id = one_experiment(
        values["experiment_name"], values["experiment_id"], from_env
    )
    backend: str = values["backend"]
    config = _parse_backend_config(values["backend_config"])
    params = _parse_pairs(values["params"], "-P", flags=False)
    docker_args = _parse_pairs(values["docker_args"], "-A", flags=True)
    wait: bool | None = values["wait"]
    synchronous = wait if wait is not None else backend != "databricks"

    from mlproj.api import RunOptions, load_backend_config
    from mlproj.errors import ExecutionException

    timeout: float | None = values["timeout"]
    if timeout is not None:
        try:
            config = {**load_backend_config(config), "timeout": timeout}
        except ExecutionException as exc:
            fail(str(exc))
    from mlproj import report
    from mlproj.local_run.supervisor import signals_cancel

    reporter = report.Reporter(quiet=values["quiet"])
    log = reporter.log

    tracking_uri: str | None = values["tracking_uri"]
    run_id: str | None = values["run_id"]
    if run_id is not None:
        from mlproj.tracking import get_store
        from mlproj.tracking.run_ids import resolve_run_id

        try:
            run_id = resolve_run_id(get_store(tracking_uri), run_id)  # a short id is enough
        except ExecutionException as exc:
            fail(str(exc))
    options = RunOptions(
        uri=values["uri"],
        entry_point=values["entry_point"],
        version=values["version"],
        parameters=params,
        docker_args=docker_args,
        experiment_name=experiment_name,
        experiment_id=experiment_id,
        backend=backend,
        backend_config=config,
        storage_dir=values["storage_dir"],
        synchronous=synchronous,
        run_id=run_id,
        run_name=values["run_name"],
        env_manager=values["env_manager"],
        build_image=values["build_image"],
        tracking_uri=tracking_uri,
        log=log,
        reuse=values["reuse"],
    )
    from mlproj.orchestration.retry import RetryPolicy, submit_with_retries

    # A signal at any step (fetch, env build, run) cancels cleanly: no run left RUNNING.
    with one_line_when_stopped("run"), report.using(reporter), signals_cancel():
        policy = RetryPolicy(values["retries"], values["retry_delay"])
        submitted = submit_with_retries(options, policy, log)
    if synchronous:
        log(f"run {submitted.run_id} {submitted.get_status()}; browse: mlproj ui")
    else:
        log(
            f"run {submitted.run_id} started; "
            f"follow it with `mlproj runs logs --follow {submitted.run_id}`"
        )
        sys.stdout.write(f"{submitted.run_id}\n")
        sys.stdout.flush()


def _parse_pairs(values: tuple[str, ...], option: str, *, flags: bool) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep and not flags:
            raise UsageProblem(
                f"Invalid format for {option} parameter: {item!r}. Use {option} name=value."
            )
        if not name:
            raise UsageProblem(f"Invalid format for {option} parameter: {item!r}: empty name.")
        if name in parsed:
            raise UsageProblem(f"Repeated parameter: {name!r}")
        parsed[name] = value if sep else True
    return parsed


def one_experiment(
    name: str | None, id_: str | None, from_env: frozenset[str]
) -> tuple[str | None, str | None]:
    """An experiment option given on the command line wins over the other one's environment
    variable (MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID); two given the same way clash."""
    if not (name and id_):
        return name, id_
    name_env = "experiment_name" in from_env
    id_env = "experiment_id" in from_env
    if name_env and not id_env:
        return None, id_
    if id_env and not name_env:
        return name, None
    where = " (from MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID)" if name_env else ""
    raise UsageProblem(f"Specify only one of 'experiment-name' or 'experiment-id' options{where}.")


def _parse_backend_config(value: str | None) -> dict[str, Any] | str | None:
    if value is None or value.endswith(".json") or Path(value).is_file():
        return value  # a file: read (and checked) by mlproj.api.load_backend_config
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageProblem(f"Invalid backend config JSON. Parse error: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageProblem("Invalid backend config JSON: expected a JSON object")
    return loaded
