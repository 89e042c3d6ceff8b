"""``mlproj envs``: look at and prune the environment cache."""

from __future__ import annotations

import time

import click

from mlproj.cli.support import human_size, size_option

DEFAULT_PRUNE_DAYS = 30.0


def _age(seconds: float) -> str:
    if seconds < 120:
        return "just now"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


@click.group("envs")
def envs_group() -> None:
    """Cached environments (uv, virtualenv, conda) under MLPROJ_HOME/envs."""


@envs_group.command("list")
@size_option
def list_command(show_size: bool) -> None:
    """List cached environments, most recently used first."""
    from mlproj.envs.cache import envs_root, iter_entries
    from mlproj.fsutil import folder_size

    root = envs_root()
    entries = sorted(iter_entries(root), key=lambda e: e.last_used(), reverse=True)
    if not entries:
        click.echo(f"No cached environments in {root}")
        return
    now = time.time()
    rows = [("NAME", "PYTHON", "LAST USED", "SIZE", "STATUS", "PROJECT")]
    for entry in entries:
        meta = entry.metadata()
        interpreter = (meta or {}).get("inputs", {}).get("interpreter") or ["", "-"]
        rows.append(
            (
                entry.name,
                str(interpreter[1]) if len(interpreter) > 1 else "-",
                _age(now - entry.last_used()),
                human_size(folder_size(entry.folder)) if show_size else "-",
                "ready" if meta is not None else "incomplete",
                str((meta or {}).get("project", "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
    click.echo(f"\n{len(entries)} environment(s) in {root}")


@envs_group.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help=f"Remove environments not used for DAYS days (default {DEFAULT_PRUNE_DAYS:g}).",
)
@click.option("--all", "remove_all", is_flag=True, help="Remove every cached environment.")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
def prune_command(older_than: float | None, remove_all: bool, dry_run: bool) -> None:
    """Remove environments by last use. Environments being built are kept."""
    from mlproj.envs.cache import prune

    if remove_all and older_than is not None:
        raise click.UsageError("Give either --older-than or --all, not both.")
    days = DEFAULT_PRUNE_DAYS if older_than is None else older_than
    results = prune(days, remove_all, dry_run)
    freed = 0
    for result in results:
        verb = "would remove" if dry_run else ("removed" if result.removed else "kept")
        click.echo(f"{verb} {result.entry.name} ({human_size(result.size)}; {result.reason})")
        if result.removed or dry_run:
            freed += result.size
    total = "would free" if dry_run else "freed"
    click.echo(f"{len(results)} environment(s) considered, {total} {human_size(freed)}")
