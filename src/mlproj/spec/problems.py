"""What is wrong (or suspicious) in a project, with the place it is written.

The loader turns an error into a :class:`SpecError` (an ``ExecutionException`` carrying its
:class:`Problem`) and keeps warnings as :class:`Problem` values; ``mlproj check`` reports both.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from mlproj.errors import ExecutionException
from mlproj.records import record

Severity = Literal["error", "warning"]


@record(frozen=True)
class Problem:
    severity: Severity
    code: str  # stable short name for editors and CI, e.g. "unknown-type"
    message: str  # what is wrong, without the place
    file: Path | None = None
    key: str = ""  # key path in the file, e.g. "entry_points.main.parameters.lr"
    line: int | None = None  # 1-based
    entry_point: str | None = None  # None: the whole project

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        key = f"{self.key}: " if self.key else ""
        place = f"{self.file}: " if self.file is not None else ""
        return f"{place}{key}{self.message}{where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": str(self.file) if self.file is not None else None,
            "line": self.line,
            "key": self.key,
            "entry_point": self.entry_point,
        }


class SpecError(ExecutionException):
    """An error in a project's files; ``problem`` says where."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def closest(word: str, valid: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid word ``word`` is most probably a misspelling of, if any."""
    import difflib  # only needed when a key or type looks wrong

    matches = difflib.get_close_matches(word.lower(), list(valid), n=1, cutoff=cutoff)
    return matches[0] if matches else None
