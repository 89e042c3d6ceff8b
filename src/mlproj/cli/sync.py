"""``mlproj runs sync``: send the run updates kept while a tracking store was unreachable.

Every mlproj command also does it on its own (``mlproj.cli.startup.replay_journals_quietly``),
so a user who never heard of the journal still sees the run's real end once the store is back.
"""

from __future__ import annotations

import sys

import click


@click.command("sync")
def sync_command() -> None:
    """Send run updates kept while the tracking store was unreachable.

    \b
    Example:
      mlproj runs sync
    """
    from mlproj.tracking.journal import pending_journals, replay

    if not pending_journals():
        click.echo("Nothing to send: no run updates are waiting.")
        return
    synced, failed = replay()
    for run_id in synced:
        click.echo(f"sent: run {run_id}")
    for run_id, why in failed:
        click.echo(f"still waiting: run {run_id}: {why}", err=True)
    if failed:
        sys.exit(1)
