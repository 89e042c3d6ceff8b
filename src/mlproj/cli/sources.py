"""``mlproj sources``: look at and clear the Git and archive caches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from mlproj.cli.support import human_size, size_option
from mlproj.fsutil import folder_size


def _mirror_url(mirror: Path) -> str:
    try:
        meta = json.loads((mirror / "mlproj.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "?"
    return str(meta.get("url", "?"))


@click.group("sources")
def sources_group() -> None:
    """Cached Git mirrors, checkouts and archives under MLPROJ_HOME."""


@sources_group.command("list")
@size_option
def list_command(show_size: bool) -> None:
    """List cached Git repositories and extracted archives."""
    from mlproj.home import mlproj_home

    home = mlproj_home()
    mirrors = sorted((home / "git" / "mirrors").glob("*.git"))
    archives = [p for p in sorted((home / "archives").glob("*")) if p.is_dir()]
    archives = [p for p in archives if not p.name.startswith(".")]
    if not mirrors and not archives:
        click.echo(f"No cached sources in {home}")
        return
    for mirror in mirrors:
        key = mirror.name.removesuffix(".git")
        checkouts_dir = home / "git" / "checkouts" / key
        checkouts = [p for p in checkouts_dir.glob("*") if not p.name.startswith(".")]
        size = folder_size(mirror) + (folder_size(checkouts_dir) if checkouts_dir.exists() else 0)
        shown = human_size(size) if show_size else "-"
        click.echo(f"git      {_mirror_url(mirror)}  ({len(checkouts)} checkouts, {shown})")
    for folder in archives:
        shown = human_size(folder_size(folder)) if show_size else "-"
        click.echo(f"archive  {folder.name}  ({shown})")


@sources_group.command("clear")
@click.option("--url", default=None, help="Only the Git repository with this URL.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_command(url: str | None, yes: bool) -> None:
    """Delete cached Git mirrors, checkouts and archives (re-fetched on the next run).

    Do not clear while a run uses a cached project: its folder disappears.
    """
    from mlproj.home import mlproj_home
    from mlproj.sources.git_cache import cache_key

    home = mlproj_home()
    if url is not None:
        key = cache_key(url)
        targets = [home / "git" / "mirrors" / f"{key}.git", home / "git" / "checkouts" / key]
    else:
        targets = [home / "git" / "mirrors", home / "git" / "checkouts", home / "archives"]
    targets = [t for t in targets if t.exists()]
    if not targets:
        click.echo("Nothing to clear.")
        return
    if not yes:
        click.confirm(f"Delete {', '.join(str(t) for t in targets)}?", abort=True)
    for target in targets:
        shutil.rmtree(target, ignore_errors=True)
    click.echo(f"Cleared {len(targets)} folder(s).")
