"""Typed parameters: validation, normalisation and the quoted command line.

(Types fixed by the lead; implemented in this module.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlproj.spec import EntryPoint


@dataclass(frozen=True)
class ResolvedParameters:
    declared: dict[str, str]  # name -> normalised value, declaration order
    extra: dict[str, str]  # undeclared, in the user's order
    local_paths: dict[str, Path] = field(default_factory=dict)  # path params as the command sees them

    def as_logged(self) -> dict[str, str]:
        return {**self.declared, **self.extra}


def resolve_parameters(
    entry_point: EntryPoint,
    user_params: Mapping[str, object] | None,
    *,
    project_dir: Path,
    spec_path: Path | None = None,
    cwd: Path | None = None,
    storage_dir: str | Path | None = None,
) -> ResolvedParameters:
    raise NotImplementedError


def render_command(entry_point: EntryPoint, resolved: ResolvedParameters) -> str:
    raise NotImplementedError
