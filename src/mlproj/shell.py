"""Commands shown the way a shell takes them, so a user can paste what mlproj printed."""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def show_command(command: str | Sequence[str]) -> str:
    """``command`` as it would be typed into a shell.

    A rendered MLproject command is already shell text: it is shown as written (its own
    quoting kept, a multi-line command on its lines), never Python-quoted. An argument list
    is joined the way :func:`shlex.join` does.
    """
    if isinstance(command, str):
        return command.strip("\n").rstrip()
    return shlex.join(command)
