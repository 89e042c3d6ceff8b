"""Shell completion values that come from outside the command line: the entry points of the
project being run and the run ids of the tracking store.

Click drives completion (``_MLPROJ_COMPLETE=bash_source mlproj``, see docs/completion.md);
these functions only supply the values. A completion must never print an error or hang the
shell, so any failure here completes nothing.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import CompletionItem, FishComplete, add_completion_class

#: Runs offered when completing a run id: the newest of the store.
COMPLETED_RUNS = 200


def entry_point_items(uri: str | None, incomplete: str) -> list[CompletionItem]:
    """Entry points declared by the MLproject of a local project folder, then its scripts."""
    if not uri:
        return []
    folder = Path(uri).expanduser()
    if not folder.is_dir():
        return []  # a Git URL or an archive: fetching it to complete a word is too slow
    try:
        from mlproj.spec.project import load_project

        project = load_project(folder)
    except Exception:  # noqa: BLE001 - a broken project completes nothing, quietly
        return []
    items = [
        CompletionItem(name, help=_first_line(entry.command))
        for name, entry in project.entry_points.items()
        if name.startswith(incomplete)
    ]
    declared = set(project.entry_points)
    for pattern in ("*.py", "*.sh"):
        for script in sorted(folder.glob(pattern)):
            if script.name.startswith(incomplete) and script.name not in declared:
                items.append(CompletionItem(script.name, help="script"))
    return items


def run_id_items(tracking_uri: str | None, incomplete: str) -> list[CompletionItem]:
    """Run ids of the newest runs in the store, with their names and statuses as help."""
    try:
        from mlproj.cli.support import run_infos
        from mlproj.tracking import get_store

        store = get_store(tracking_uri)
        ids = [e.experiment_id for e in store.list_experiments() if e.lifecycle_stage == "active"]
        infos = run_infos(store, ids, status=None, max_results=COMPLETED_RUNS)
    except Exception:  # noqa: BLE001 - an unreachable store completes nothing, quietly
        return []
    wanted = incomplete.lower()
    return [
        CompletionItem(info.run_id, help=f"{info.run_name} {info.status}")
        for info in infos
        if info.run_id.startswith(wanted)
    ]


def complete_run_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``shell_complete`` of every run id argument and option: the newest runs of the store
    the command line names (``--tracking-uri`` given before the id)."""
    return run_id_items(ctx.params.get("tracking_uri"), incomplete)


class _FishComplete(FishComplete):
    """Click's fish script splits each reply at every comma, so fish showed help cut at its
    first comma ("local" for "local, uv, virtualenv or conda"): split at the first only."""

    source_template = FishComplete.source_template.replace(
        'string split "," $completion', 'string split -m 1 "," $completion'
    )


def use_fixed_shell_scripts() -> None:
    """Replace click's fish script by :class:`_FishComplete` (before the CLI runs); the real
    fish in tests/cli/test_cli_completion.py shows whole help, so a click that changed the
    script is noticed there."""
    add_completion_class(_FishComplete, "fish")


def _first_line(command: str) -> str:
    lines = command.strip().splitlines()
    return lines[0][:60] if lines else ""
