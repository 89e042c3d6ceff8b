"""Where projects come from: local folders, Git repositories, archives."""

from __future__ import annotations

from mlproj.sources.base import FetchedProject

__all__ = ["FetchedProject", "fetch_project"]


def fetch_project(uri: str, version: str | None = None) -> FetchedProject:
    raise NotImplementedError
