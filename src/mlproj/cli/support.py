"""Pieces the cache commands (``mlproj envs``, ``mlproj sources``) share."""

from __future__ import annotations

import click

#: ``--size/--no-size`` of the ``list`` commands: folder sizes cost a walk of every file.
size_option = click.option(
    "--size/--no-size", "show_size", default=True, help="Compute folder sizes."
)


def human_size(num: float) -> str:
    """A byte count as ``512 B``, ``1.5 KB`` ... ``3.2 GB`` (GB is the largest unit)."""
    for unit in ("B", "KB", "MB", "GB"):
        if num < 1024 or unit == "GB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return f"{num:.1f} GB"
