"""What fetching a project yields."""

from __future__ import annotations

from pathlib import Path

from mlproj.records import record
from mlproj.tags import (
    MLFLOW_GIT_BRANCH,
    MLFLOW_GIT_COMMIT,
    MLFLOW_GIT_REPO_URL,
    MLFLOW_SOURCE_NAME,
)


@record(frozen=True)
class FetchedProject:
    directory: Path  # absolute folder holding the MLproject (subdirectory applied)
    source_name: str  # value of tag mlflow.source.name (credentials stripped)
    git_commit: str | None = None  # full SHA, when the project is in a Git repository
    git_repo_url: str | None = None  # credentials stripped
    git_branch: str | None = None  # only when the requested version is a branch

    def source_tags(self) -> dict[str, str]:
        tags = {MLFLOW_SOURCE_NAME: self.source_name}
        if self.git_commit:
            tags[MLFLOW_GIT_COMMIT] = self.git_commit
        if self.git_repo_url:
            tags[MLFLOW_GIT_REPO_URL] = self.git_repo_url
        if self.git_branch:
            tags[MLFLOW_GIT_BRANCH] = self.git_branch
        return tags
