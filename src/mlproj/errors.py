"""The one exception users see.

Every user mistake (bad spec, bad parameter, unknown entry point, missing tool) and every
failed run surfaces as :class:`ExecutionException`. The CLI prints its message as one line.
"""

from __future__ import annotations


class ExecutionException(Exception):
    """Raised when a project cannot be run or a run fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def one_line(text: str) -> str:
    """``text`` (a tool's stderr, a library's multi-line error) folded into one line without
    a final period, so a message built around it prints as one line."""
    lines = (line.strip().rstrip(".;:") for line in text.splitlines())
    return "; ".join(line for line in lines if line)


class StoreUnreachable(ExecutionException):
    """The tracking store did not answer (connection refused, timeouts, 5xx, a database locked)
    even after retries. A write that fails this way can be kept and sent again later
    (:mod:`mlproj.tracking.journal`); any other ExecutionException means the store refused it."""
