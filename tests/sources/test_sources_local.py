"""Local project folders: used in place, with MLflow's Git tags read from real repositories."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.sources import fetch_project
from tests.sources.sources_git_cli import git


def make_repo(path: Path) -> str:
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    (path / "MLproject").write_text("name: top\n")
    (path / "v1.2").mkdir()
    (path / "v1.2" / "MLproject").write_text("name: dotted\n")
    git("add", ".", cwd=path)
    git("commit", "-qm", "one", cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def test_plain_folder_runs_in_place(tmp_path: Path) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    (project / "MLproject").write_text("name: p\n")
    fetched = fetch_project(str(project))
    assert fetched.directory == project.resolve()
    assert fetched.source_name == str(project.resolve())
    assert fetched.git_commit is None and fetched.git_repo_url is None
    assert fetched.source_tags() == {"mlflow.source.name": str(project.resolve())}
    # quotes around the URI (copied from a shell) are ignored, file:// URLs are local too
    assert fetch_project(f"'{project}'").directory == project.resolve()
    assert fetch_project(project.as_uri()).directory == project.resolve()


def test_folder_inside_git_repo_gets_mlflow_tags(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    head = make_repo(repo)
    git("remote", "add", "origin", "https://user:tok3nSECRET@example.com/org/repo.git", cwd=repo)
    git("remote", "add", "another", "https://example.org/other.git", cwd=repo)

    root = fetch_project(str(repo))
    assert root.directory == repo.resolve()
    assert root.source_name == f"file://{repo.resolve()}"
    assert root.git_commit == head
    assert root.git_repo_url == "https://example.com/org/repo.git"  # first remote, no token

    dotted = fetch_project(str(repo / "v1.2"))
    assert dotted.source_name == f"file://{repo.resolve()}#v1.2"
    assert dotted.directory == (repo / "v1.2").resolve()

    via_fragment = fetch_project(f"{repo}#v1.2")
    assert via_fragment == dotted
    via_file_uri = fetch_project(f"{repo.as_uri()}#v1.2")
    assert via_file_uri == dotted


def test_packed_refs_detached_head_and_worktree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    head = make_repo(repo)
    git("pack-refs", "--all", cwd=repo)
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert fetch_project(str(repo)).git_commit == head

    (repo / "two.txt").write_text("2")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "two", cwd=repo)
    git("checkout", "-q", "--detach", head, cwd=repo)
    assert fetch_project(str(repo)).git_commit == head  # detached HEAD holds a SHA

    worktree = tmp_path / "wt"
    git("worktree", "add", "-q", "--detach", str(worktree), "main", cwd=repo)
    fetched = fetch_project(str(worktree / "v1.2"))  # .git is a file here: falls back to git
    assert fetched.git_commit == git("rev-parse", "main", cwd=repo)
    assert fetched.source_name == f"file://{worktree.resolve()}#v1.2"


def test_unborn_branch_and_ignored_folder_have_no_commit(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git("init", "-q", cwd=empty)
    fetched = fetch_project(str(empty))
    assert fetched.git_commit is None
    assert fetched.source_name == f"file://{empty.resolve()}"

    repo = tmp_path / "repo"
    make_repo(repo)
    (repo / ".gitignore").write_text("scratch/\n")
    (repo / "scratch" / "proj").mkdir(parents=True)
    ignored = fetch_project(str(repo / "scratch" / "proj"))
    assert ignored.git_commit is None
    assert ignored.source_name == str((repo / "scratch" / "proj").resolve())


def test_tracked_untracked_and_index_versions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    head = make_repo(repo)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "fresh").mkdir()  # untracked, not ignored: git is asked, tags stay
    assert fetch_project(str(repo / "fresh")).git_commit == head
    (repo / "v1.2" / "extra.txt").write_text("x")
    git("add", "-N", "v1.2/extra.txt", cwd=repo)  # intent-to-add: an index v3 entry
    assert (repo / ".git" / "index").read_bytes()[4:8] == b"\x00\x00\x00\x03"
    assert fetch_project(str(repo / "v1.2")).git_commit == head
    git("update-index", "--index-version", "4", cwd=repo)  # compressed paths: git answers
    assert fetch_project(str(repo / "v1.2")).git_commit == head
    (repo / "build" / "proj").mkdir(parents=True)
    assert fetch_project(str(repo / "build" / "proj")).git_commit is None


def test_version_on_non_git_folder_is_rejected(tmp_path: Path) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    with pytest.raises(ExecutionException) as info:
        fetch_project(str(project), version="main")
    assert str(info.value) == "Setting a version is only supported for Git project URIs"


def test_bad_paths_and_subdirs(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match="does not exist"):
        fetch_project(str(tmp_path / "missing"))
    project = tmp_path / "p"
    project.mkdir()
    with pytest.raises(ExecutionException, match="Could not find subdirectory 'nope'"):
        fetch_project(f"{project}#nope")
    with pytest.raises(ExecutionException, match="points outside the project"):
        fetch_project(f"{project}#a/../../etc")
    with pytest.raises(ExecutionException, match="must be a relative path"):
        fetch_project(f"{project}#/etc")
    (project / "escape").symlink_to(tmp_path)
    with pytest.raises(ExecutionException, match="resolves outside the project"):
        fetch_project(f"{project}#escape")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ExecutionException, match="is not a folder"):
        fetch_project(str(tmp_path / "file.txt"))


def _median_ms(target: str) -> float:
    fetch_project(target)
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        fetch_project(target)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


@pytest.mark.timing
def test_local_git_folder_is_cheap(tmp_path: Path) -> None:
    """The hot path of every local run: at the repository root, a few file reads, no process."""
    repo = tmp_path / "repo"
    make_repo(repo)
    at_root = _median_ms(str(repo))
    in_subdir = _median_ms(str(repo / "v1.2"))  # tracked files: no `git check-ignore`
    print(f"local git folder fetch: root {at_root:.2f} ms, subfolder {in_subdir:.2f} ms")
    # target 5 ms; a loose bound for a busy 2-core CI machine
    assert at_root < 5
    assert in_subdir < 5
