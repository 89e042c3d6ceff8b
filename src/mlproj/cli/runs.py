"""``mlproj runs ...`` and ``mlproj experiments ...``: look at and manage runs on any store.

The commands work on every tracking store (``get_store``). Cancel and reap act on local runs
through :mod:`mlproj.local_run.identity` (the supervisor process on this host) and on remote
runs through :mod:`mlproj.backends.remote.reattach` (the backend named in the run's tags finds
its job again). Tables are plain text, or rich on a terminal; ``--json`` gives machine-readable
output.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from mlproj.cli.support import run_infos
from mlproj.cli.sync import sync_command
from mlproj.errors import ExecutionException
from mlproj.report import print_table
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tags import (
    LOG_ARTIFACT_PATH,
    MLFLOW_BACKEND,
    MLFLOW_ENTRY_POINT,
    MLFLOW_ENV,
    MLFLOW_GIT_COMMIT,
    MLFLOW_SOURCE_NAME,
    TAG_ERROR,
    TAG_HOST,
    TAG_LOG,
    TAG_LOG_ERROR,
    TAG_PID,
)
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Experiment, Run, RunInfo

STATUSES = (
    RunStatus.RUNNING,
    RunStatus.SCHEDULED,
    RunStatus.FINISHED,
    RunStatus.FAILED,
    RunStatus.KILLED,
    "ORPHANED",
)
# Search page for "every run" questions (reap, orphan filter); large stores are paged by the store.
ALL_RUNS = 1_000_000
FOLLOW_POLL_S = 0.25

tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="Tracking store (default: $MLFLOW_TRACKING_URI, else ./mlruns if it holds runs, "
    "else sqlite:///mlflow.db).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _complete_run_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from mlproj.cli.completion import complete_run_id

    return complete_run_id(ctx, param, incomplete)


run_id_argument = click.argument("run_id", shell_complete=_complete_run_id)


def _resolve(store: TrackingStore, text: str) -> str:
    from mlproj.tracking.run_ids import resolve_run_id

    return resolve_run_id(store, text)


@contextmanager
def _user_errors() -> Iterator[None]:
    """ExecutionException -> one line on stderr (as ``mlproj run`` prints it), exit 1."""
    try:
        yield
    except ExecutionException as exc:
        from mlproj import report

        report.current().error(str(exc))
        raise click.exceptions.Exit(1) from None


def _open_store(tracking_uri: str | None) -> TrackingStore:
    from mlproj.tracking import get_store

    return get_store(tracking_uri)


# -- orphan check (mlproj.local_run.identity) -------------------------------------------
def _orphan_check() -> Callable[[Run], bool]:
    from mlproj.local_run.identity import is_orphaned

    return is_orphaned


def _is_orphan(run: Run, check: Callable[[Run], bool]) -> bool:
    return run.info.status == RunStatus.RUNNING and check(run)


def settle_orphan(store: TrackingStore, run: Run) -> Run:
    """Settle a run mlproj left RUNNING when it crashed on this host: stop what it left
    running and mark it FAILED, saying so. Every command that looks at runs does this, so a
    user never needs to know ``runs reap``. Returns the run as recorded now."""
    from mlproj import report
    from mlproj.local_run.identity import reap

    try:
        reap(store, run)
    except ExecutionException:
        return store.get_run(run.run_id)  # settled by another process a moment ago
    report.warning(
        f"run {run.run_id} ({run.info.run_name}) was left RUNNING by an mlproj process that "
        "is gone (crash, kill or reboot): its command was stopped and the run marked FAILED"
    )
    return store.get_run(run.run_id)


def settle_orphans(store: TrackingStore, experiment_ids: list[str]) -> None:
    """Settle every orphan of this host in these experiments, not only the runs a command
    shows: a ``--status`` filter or ``--max-results`` must not leave one RUNNING. Costs one
    search for RUNNING runs; their tags are read only for those."""
    check = _orphan_check()
    for info in run_infos(store, experiment_ids, status=RunStatus.RUNNING, max_results=ALL_RUNS):
        try:
            run = store.get_run(info.run_id)
        except ExecutionException:
            continue  # ended and removed meanwhile, or damaged (warned about by the store)
        if _is_orphan(run, check):
            settle_orphan(store, run)


# -- formatting -----------------------------------------------------------------------------------
def format_time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration_s(info: RunInfo, now_ms: int | None = None) -> float | None:
    start = info.start_time
    if not start:
        return None
    end = info.end_time
    if end is None:
        if info.status in TERMINAL_STATUSES:
            return None
        end = now_ms if now_ms is not None else int(time.time() * 1000)
    return max(0.0, (end - start) / 1000)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def shown_status(status: str, orphaned: bool) -> str:
    return f"{status} (orphaned)" if orphaned else status


def run_record(run: Run, orphaned: bool, experiment_name: str | None = None) -> dict[str, Any]:
    """The JSON form of a run (``runs list --json`` / ``runs show --json``)."""
    tags = run.tags
    return {
        "run_id": run.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "experiment_name": experiment_name,
        "status": run.info.status,
        "orphaned": orphaned,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "duration_s": duration_s(run.info),
        "user_id": run.info.user_id,
        "artifact_uri": run.info.artifact_uri,
        "source": tags.get(MLFLOW_SOURCE_NAME),
        "version": tags.get(MLFLOW_GIT_COMMIT),
        "entry_point": tags.get(MLFLOW_ENTRY_POINT),
        "environment": tags.get(MLFLOW_ENV),
        "backend": tags.get(MLFLOW_BACKEND),
        "error": tags.get(TAG_ERROR),
        "params": run.params,
        "metrics": _json_metrics(run.metrics),
        "tags": tags,
    }


def _json_metrics(metrics: dict[str, float]) -> dict[str, float | str]:
    # JSON has no NaN / Infinity literals; keep the output parseable by any reader.
    return {k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()}


# -- experiments selection ------------------------------------------------------------------------
def _experiments(
    store: TrackingStore, name: str | None, experiment_id: str | None
) -> list[Experiment]:
    if name is not None and experiment_id is not None:
        raise click.UsageError("Specify only one of --experiment-name or --experiment-id.")
    if name is not None:
        found = store.get_experiment_by_name(name)
        if found is None:
            raise ExecutionException(
                f"Experiment {name!r} not found in tracking store {store.tracking_uri}; "
                "see `mlproj experiments list`"
            )
        return [found]
    if experiment_id is not None:
        found = store.get_experiment(experiment_id)
        if found is None:
            raise ExecutionException(
                f"Experiment with id {experiment_id!r} not found in tracking store "
                f"{store.tracking_uri}; see `mlproj experiments list`"
            )
        return [found]
    return [e for e in store.list_experiments() if e.lifecycle_stage == "active"]


def _parse_params(values: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        params[key] = value
    return params


def _newest_first(runs: list[Run]) -> list[Run]:
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.run_id), reverse=True)


# -- runs -----------------------------------------------------------------------------------------
@click.group("runs", short_help="List, inspect, follow, cancel and reap runs.")
def runs() -> None:
    """List, inspect, follow, cancel and clean up runs.

    A RUN_ID may be shortened to any unique prefix, as with Git commits.

    \b
    Examples:
      mlproj runs list --status RUNNING
      mlproj runs show 82fc817e
      mlproj runs logs 82fc817e --follow
    """


@runs.command("list", short_help="Runs, newest first: status, start and duration.")
@tracking_uri_option
@click.option("--experiment-name", default=None, help="Only runs of this experiment.")
@click.option("--experiment-id", default=None, help="Only runs of this experiment id.")
@click.option(
    "--status",
    type=click.Choice(STATUSES, case_sensitive=False),
    default=None,
    help="Only runs with this status (ORPHANED: RUNNING but its supervisor is gone).",
)
@click.option("--param", "param_filters", multiple=True, metavar="KEY=VALUE", help="Param filter.")
@click.option(
    "--parent",
    default=None,
    metavar="RUN_ID",
    shell_complete=_complete_run_id,
    help="Only children of this run (trials, steps).",
)
@click.option(
    "--max-results",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Show at most this many runs.",
)
@json_option
def list_runs(
    tracking_uri: str | None,
    experiment_name: str | None,
    experiment_id: str | None,
    status: str | None,
    param_filters: tuple[str, ...],
    parent: str | None,
    max_results: int,
    as_json: bool,
) -> None:
    """Runs of the tracking store, newest first: status, start and duration.

    \b
    Examples:
      mlproj runs list
      mlproj runs list --experiment-name demo --status FAILED
      mlproj runs list --param alpha=0.3 --json
      mlproj runs list --tracking-uri http://127.0.0.1:5000
    """
    params = _parse_params(param_filters)
    with _user_errors():
        store = _open_store(tracking_uri)
        experiments = _experiments(store, experiment_name, experiment_id)
        names = {e.experiment_id: e.name for e in experiments}
        wanted = status.upper() if status else None
        orphans_only = wanted == "ORPHANED"
        if not orphans_only:
            settle_orphans(store, list(names))
        search_status = RunStatus.RUNNING if orphans_only else wanted
        limit = ALL_RUNS if orphans_only else max_results
        check = _orphan_check()
        listed: list[tuple[RunInfo, Run | None, bool]] = []
        candidates: list[tuple[RunInfo, Run | None]]
        if parent:
            parent = _resolve(store, parent)
            found = _children(store, list(names), parent, search_status, params)
            candidates = [(r.info, r) for r in found]
        elif as_json or params:
            found = store.search_runs(
                list(names), status=search_status, params=params or None, max_results=limit
            )
            candidates = [(r.info, r) for r in found]
        else:
            # A table needs only the run records, not every param, metric and tag.
            infos = run_infos(store, list(names), status=search_status, max_results=limit)
            candidates = [(info, None) for info in infos]
        candidates.sort(key=lambda c: (c[0].start_time, c[0].run_id), reverse=True)
        for found_info, loaded in candidates:
            info, full = found_info, loaded
            orphaned = False
            if info.status == RunStatus.RUNNING:
                # The orphan check needs the identity tags: fetch them for live runs only.
                full = loaded or store.get_run(info.run_id)
                orphaned = check(full)
                if orphaned and not orphans_only:
                    full = settle_orphan(store, full)
                    info, orphaned = full.info, False
            if orphans_only and not orphaned:
                continue
            listed.append((info, full, orphaned))
            if len(listed) >= max_results:
                break
    _warn_damaged(store)
    if as_json:
        records = [
            run_record(r, o, names.get(i.experiment_id)) for i, r, o in listed if r is not None
        ]
        click.echo(json.dumps(records, indent=2, allow_nan=False))
        return
    if not listed:
        click.echo(_nothing_found(store, experiments, status, params), err=True)
        return
    now = int(time.time() * 1000)
    rows = [
        (
            info.run_id,
            names.get(info.experiment_id, info.experiment_id),
            info.run_name,
            shown_status(info.status, orphaned),
            format_time(info.start_time),
            format_duration(duration_s(info, now)),
            info.user_id or "-",
        )
        for info, _, orphaned in listed
    ]
    print_table(("RUN ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "DURATION", "USER"), rows)


def _children(
    store: TrackingStore,
    experiment_ids: list[str],
    parent: str,
    status: str | None,
    params: dict[str, str],
) -> list[Run]:
    from mlproj.tags import MLFLOW_PARENT_RUN_ID

    found = store.find_runs_by_tag(
        experiment_ids, MLFLOW_PARENT_RUN_ID, parent, status=status, max_results=ALL_RUNS
    )
    return [r for r in found if all(r.params.get(k) == v for k, v in params.items())]


def _nothing_found(
    store: TrackingStore,
    experiments: list[Experiment],
    status: str | None,
    params: dict[str, str],
) -> str:
    """Where ``runs list`` looked, and how to look elsewhere."""
    from mlproj.redaction import redact_url

    where = redact_url(store.tracking_uri)
    elsewhere = "point at another store with --tracking-uri or MLFLOW_TRACKING_URI"
    if not experiments:
        return f"No experiments in tracking store {where}; {elsewhere}."
    shown = ", ".join(f"{e.name!r} ({e.experiment_id})" for e in experiments[:5])
    if len(experiments) > 5:
        shown += f" and {len(experiments) - 5} more"
    label = "experiment" if len(experiments) == 1 else "experiments"
    filters = [f"status {status.upper()}"] if status else []
    filters += [f"param {k}={v}" for k, v in params.items()]
    matching = f" with {', '.join(filters)}" if filters else ""
    return (
        f"No runs{matching} in {label} {shown} of tracking store {where}; {elsewhere}, "
        "or at another experiment with --experiment-name."
    )


def _warn_damaged(store: TrackingStore) -> None:
    """Name every damaged file the store skipped (a truncated meta.yaml, a corrupt metric)."""
    from mlproj import report

    for problem in getattr(store, "damaged", ()):
        report.warning(f"skipped a damaged file: {problem}")


@runs.command("show", short_help="Everything about one run: params, metrics, tags.")
@run_id_argument
@tracking_uri_option
@json_option
def show_run(run_id: str, tracking_uri: str | None, as_json: bool) -> None:
    """Everything about one run: status, timing, source, params, metrics, tags.

    \b
    Examples:
      mlproj runs show 82fc817e
      mlproj runs show 82fc817e --json
    """
    with _user_errors():
        store = _open_store(tracking_uri)
        run = store.get_run(_resolve(store, run_id))
        experiment = store.get_experiment(run.info.experiment_id)
        orphaned = _is_orphan(run, _orphan_check())
        if orphaned:
            run, orphaned = settle_orphan(store, run), False
    _warn_damaged(store)
    record = run_record(run, orphaned, experiment.name if experiment else None)
    if as_json:
        click.echo(json.dumps(record, indent=2, allow_nan=False))
        return
    exp_label = f"{record['experiment_name'] or '-'} ({run.info.experiment_id})"
    fields = [
        ("Run", f"{run.run_id} ({run.info.run_name})"),
        ("Experiment", exp_label),
        ("Status", shown_status(run.info.status, orphaned)),
        ("Started", format_time(run.info.start_time)),
        ("Ended", format_time(run.info.end_time)),
        ("Duration", format_duration(duration_s(run.info))),
        ("User", run.info.user_id or "-"),
        ("Source", record["source"] or "-"),
        ("Version", record["version"] or "-"),
        ("Entry point", record["entry_point"] or "-"),
        ("Environment", record["environment"] or "local"),
        ("Backend", record["backend"] or "-"),
        ("Artifacts", run.info.artifact_uri or "-"),
    ]
    if record["error"]:
        fields.append(("Error", record["error"]))
    if orphaned:
        fields.append(("Note", "its supervisor is gone; `mlproj runs reap` marks it FAILED"))
    width = max(len(k) for k, _ in fields)
    lines = [f"{k.ljust(width)}  {v}" for k, v in fields]
    for title, values in (("Params", run.params), ("Metrics", run.metrics), ("Tags", run.tags)):
        lines.append(f"{title}:" if values else f"{title}: -")
        lines.extend(f"  {k} = {values[k]}" for k in sorted(values))
    click.echo("\n".join(lines))


@runs.command("logs", short_help="A run's output; --follow while it runs.")
@run_id_argument
@tracking_uri_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
def run_logs(run_id: str, tracking_uri: str | None, follow: bool) -> None:
    """The output of a run: the local log file, else the artifact mlproj/output.log.

    \b
    Examples:
      mlproj runs logs 82fc817e
      mlproj runs logs 82fc817e --follow
    """
    with _user_errors():
        store = _open_store(tracking_uri)
        run_id = _resolve(store, run_id)
        run = store.get_run(run_id)
        if _is_orphan(run, _orphan_check()):
            run = settle_orphan(store, run)
        local = _local_log(run)
        try:
            if local is not None:
                _print_local_log(store, run, local, follow)
                return
            if follow:
                run, local = _wait_terminal(store, run)
                if local is not None:  # the supervisor has started the command meanwhile
                    _print_local_log(store, run, local, follow)
                    return
            from mlproj.tracking.artifacts import read_artifact

            data = read_artifact(store, run, LOG_ARTIFACT_PATH)
        except KeyboardInterrupt:
            return
        if data is None:
            lost = run.tags.get(TAG_LOG_ERROR)
            if lost:
                raise ExecutionException(
                    f"Run {run_id} has no output log: it could not be kept when the run "
                    f"ended: {lost}"
                )
            raise ExecutionException(
                f"Run {run_id} has no output log: no local file (tag mlproj.log) and no "
                f"artifact {LOG_ARTIFACT_PATH}"
                + ("" if run.info.status in TERMINAL_STATUSES else " yet; try --follow")
            )
        _write(data)


def _local_log(run: Run) -> Path | None:
    path = run.tags.get(TAG_LOG)
    host = run.tags.get(TAG_HOST)
    if not path or (host and host != socket.gethostname()):
        return None
    file = Path(path)
    return file if file.is_file() else None


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _print_local_log(store: TrackingStore, run: Run, path: Path, follow: bool) -> None:
    from mlproj.local_run.identity import is_orphaned, outcome_recorded

    with path.open("rb") as log:
        _write(log.read())
        if not follow:
            return
        latest = run
        checked = time.monotonic()
        while not outcome_recorded(latest):
            chunk = log.read()
            if chunk:
                _write(chunk)
                continue
            time.sleep(FOLLOW_POLL_S)
            if time.monotonic() - checked >= 1.0:
                latest = store.get_run(run.run_id)
                if is_orphaned(latest):
                    # Its mlproj crashed meanwhile: nobody else will ever end it.
                    latest = settle_orphan(store, latest)
                checked = time.monotonic()
        # The supervisor may write its last lines just before it records the status.
        _write(log.read())


def _wait_terminal(store: TrackingStore, run: Run) -> tuple[Run, Path | None]:
    """Wait for the run's final status, or for its local log to appear (returned, to follow).

    Final means recorded by its supervisor, not the project's own MLflow client, which may
    end the run FINISHED on its way out of a crashed script just before the supervisor
    writes FAILED."""
    from mlproj.local_run.identity import is_orphaned, outcome_recorded

    while not outcome_recorded(run):
        if is_orphaned(run):
            return settle_orphan(store, run), None
        # A local supervisor is about to start the command; a remote job needs no haste.
        time.sleep(FOLLOW_POLL_S if TAG_PID in run.tags else 1.0)
        run = store.get_run(run.run_id)
        local = _local_log(run)
        if local is not None:
            return run, local
    return run, None


@runs.command("cancel", short_help="Stop a RUNNING run; it ends KILLED.")
@run_id_argument
@tracking_uri_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a local run to stop.",
)
def cancel_run(run_id: str, tracking_uri: str | None, timeout: float) -> None:
    """Stop a RUNNING run: a local run started on this machine, or a run of a remote backend
    (Kubernetes, Databricks, a plugin) found again through its tags; it ends KILLED. A local
    run whose mlproj process is gone (crash, kill) has what it left running stopped and is
    marked FAILED, as `runs list` would.

    \b
    Examples:
      mlproj runs cancel 82fc817e
      mlproj runs cancel 82fc817e --timeout 60
    """
    with _user_errors():
        from mlproj.backends.registry import backend_name_of
        from mlproj.backends.remote.reattach import is_local, reattach, record_outcome
        from mlproj.local_run.identity import request_cancel

        store = _open_store(tracking_uri)
        run_id = _resolve(store, run_id)
        run = store.get_run(run_id)
        if _is_orphan(run, _orphan_check()):
            # Its supervisor is gone: stop what it left running and record it, as every
            # command that looks at runs does (no need to know `runs reap`).
            final = settle_orphan(store, run).info.status
        elif is_local(run):
            final = request_cancel(store, run, timeout=timeout)
        else:
            if run.info.status in TERMINAL_STATUSES:
                raise ExecutionException(f"Run '{run_id}' is already {run.info.status}")
            handle = reattach(run, store)
            if handle is None:
                raise ExecutionException(
                    f"Run '{run_id}' (backend {backend_name_of(run)!r}) has no job recorded: "
                    "it is still being submitted, or its backend cannot find its runs again; "
                    "cancel it where it runs"
                )
            handle.cancel()
            final = record_outcome(store, run_id, handle.get_status())
    click.echo(f"Run {run_id}: {final}")


@runs.command("reap", short_help="Settle RUNNING runs nobody watches any more.")
@tracking_uri_option
@click.option("--dry-run", is_flag=True, help="Only list what would be done.")
def reap_runs(tracking_uri: str | None, dry_run: bool) -> None:
    """Settle RUNNING runs nobody watches any more.

    A local run whose supervisor on this machine is gone is marked FAILED. A remote run
    (Kubernetes, Databricks, plugins) is looked up on its cluster through its tags: when it
    has ended its real final status is recorded; when it still runs and its watcher on this
    machine is gone, a new watcher is started.

    \b
    Examples:
      mlproj runs reap --dry-run
      mlproj runs reap
    """
    from mlproj import report
    from mlproj.backends.registry import backend_name_of
    from mlproj.backends.remote.reattach import is_local, settle
    from mlproj.local_run.identity import is_orphaned, reap

    unreachable = 0
    with _user_errors():
        store = _open_store(tracking_uri)
        ids = [e.experiment_id for e in _experiments(store, None, None)]
        running = _newest_first(
            store.search_runs(ids, status=RunStatus.RUNNING, max_results=ALL_RUNS)
        )
        orphans = [r for r in running if is_orphaned(r)]
        remote = [r for r in running if not is_local(r)]
        for run in orphans:
            if dry_run:
                click.echo(f"Would mark FAILED: {run.run_id} ({run.info.run_name})")
            else:
                reap(store, run)
                click.echo(f"Marked FAILED: {run.run_id} ({run.info.run_name})")
        for run in remote:
            where = f"{run.run_id} ({run.info.run_name}) on {backend_name_of(run)}"
            if dry_run:
                click.echo(f"Would check: {where}")
                continue
            try:
                settled = settle(run, store)
            except ExecutionException as exc:
                # One unreachable cluster must not stop the others from being settled.
                report.current().error(f"could not check {where}: {exc}")
                unreachable += 1
                continue
            if settled is None or not settled.found:
                click.echo(
                    f"Cannot check: {where} (no job recorded: still being submitted, or its "
                    "backend cannot find its runs again)"
                )
            elif settled.status in TERMINAL_STATUSES:
                click.echo(f"Recorded {settled.status}: {where}")
            elif settled.new_watcher:
                click.echo(f"Still {settled.status}, started a new watcher: {where}")
            else:
                click.echo(f"Still {settled.status}: {where}")
    if not orphans and not remote:
        click.echo("No orphaned runs.")
    if unreachable:
        raise click.exceptions.Exit(1)


# -- experiments ----------------------------------------------------------------------------------
@click.group("experiments", short_help="List the experiments of a tracking store.")
def experiments() -> None:
    """Experiments of a tracking store.

    \b
    Examples:
      mlproj experiments list
      mlproj experiments list --tracking-uri http://127.0.0.1:5000 --json
    """


@experiments.command("list", short_help="Active experiments, oldest first.")
@tracking_uri_option
@json_option
def list_experiments(tracking_uri: str | None, as_json: bool) -> None:
    """Active experiments of the tracking store, oldest first.

    \b
    Examples:
      mlproj experiments list
      mlproj experiments list --json
    """
    with _user_errors():
        store = _open_store(tracking_uri)
        found = [e for e in store.list_experiments() if e.lifecycle_stage == "active"]
    found.sort(key=lambda e: (e.creation_time or 0, e.experiment_id))
    if as_json:
        records = [
            {
                "experiment_id": e.experiment_id,
                "name": e.name,
                "artifact_location": e.artifact_location,
                "lifecycle_stage": e.lifecycle_stage,
                "creation_time": e.creation_time,
                "tags": e.tags,
            }
            for e in found
        ]
        click.echo(json.dumps(records, indent=2))
        return
    if not found:
        click.echo("No experiments found.", err=True)
        return
    rows = [
        (e.experiment_id, e.name, format_time(e.creation_time), e.artifact_location) for e in found
    ]
    print_table(("ID", "NAME", "CREATED", "ARTIFACT LOCATION"), rows)


runs.add_command(sync_command)
