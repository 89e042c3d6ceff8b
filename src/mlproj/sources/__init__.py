"""Where projects come from: local folders, Git repositories, archives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.redaction import strip_credentials
from mlproj.sources.base import FetchedProject
from mlproj.sources.uris import ProjectURI, parse_project_uri

__all__ = ["FetchedProject", "fetch_project"]


def fetch_project(
    uri: str, version: str | None = None, *, log: Callable[[str], None] | None = None
) -> FetchedProject:
    """Resolve ``uri`` (plus an optional Git ``version``) to a local project folder.

    Local folders are used in place; Git repositories go through the mirror cache and get an
    isolated checkout per commit; archives are extracted once per content hash. ``log`` gets
    one line per slow step (fetching, checking out, downloading, extracting); nothing when the
    cache answers.
    """
    parsed = parse_project_uri(uri)
    if parsed.kind == "local":
        return _fetch_local(parsed, version, log)
    if parsed.kind == "archive":
        return _fetch_archive(parsed, version, log)
    return _fetch_git(parsed.base, parsed, version, log=log)


def _fetch_local(
    parsed: ProjectURI, version: str | None, log: Callable[[str], None] | None
) -> FetchedProject:
    from mlproj.sources.local import fetch_local, find_git_root, git_facts, is_bare_repo

    assert parsed.local_path is not None
    base = parsed.local_path.resolve()
    if is_bare_repo(base):  # nothing to run in place: go through the cache like a remote
        url = parsed.base if parsed.base.startswith("file:") else str(base)
        return _fetch_git(url, parsed, version, log=log)
    if version is None:
        directory = _apply_subdir(base, parsed.subdir, parsed.original)
        return fetch_local(directory)
    root = find_git_root(base)
    if root is None:
        raise ExecutionException("Setting a version is only supported for Git project URIs")
    # Check out the version from the user's repository into the cache: their working copy,
    # branch and files stay as they are.
    relative = base.relative_to(root).as_posix() if base != root else ""
    subdir = "/".join(part for part in (relative, parsed.subdir) if part)
    facts = git_facts(root)
    git_dir = root / ".git"
    fetched = _fetch_git(
        str(root),
        parsed,
        version,
        subdir=subdir,
        origin_url=facts.remote_url if facts else None,
        local_git_dir=git_dir if git_dir.is_dir() else None,
        log=log,
    )
    name = f"file://{root}" + (f"#{subdir}" if subdir else "")
    return FetchedProject(
        directory=fetched.directory,
        source_name=name,
        git_commit=fetched.git_commit,
        git_repo_url=facts.remote_url if facts else None,
        git_branch=fetched.git_branch,
    )


def _fetch_git(
    url: str,
    parsed: ProjectURI,
    version: str | None,
    *,
    subdir: str | None = None,
    origin_url: str | None = None,
    local_git_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> FetchedProject:
    from mlproj.sources.git_cache import GitCache

    cache = GitCache(url, origin_url=origin_url, local_git_dir=local_git_dir, log=log)
    wanted = parsed.subdir if subdir is None else subdir
    checkout = cache.checkout(version, wanted)
    directory = _apply_subdir(checkout.directory, wanted, parsed.original)
    return FetchedProject(
        directory=directory,
        source_name=strip_credentials(parsed.original),
        git_commit=checkout.commit,
        git_repo_url=strip_credentials(url),
        git_branch=checkout.branch,
    )


def _fetch_archive(
    parsed: ProjectURI, version: str | None, log: Callable[[str], None] | None
) -> FetchedProject:
    from mlproj.sources.archives import fetch_archive, project_root

    if version is not None:
        raise ExecutionException("Setting a version is only supported for Git project URIs")
    extracted = fetch_archive(parsed.base, parsed.local_path, log)
    root = extracted if parsed.subdir else project_root(extracted)
    directory = _apply_subdir(root, parsed.subdir, parsed.original)
    return FetchedProject(directory=directory, source_name=strip_credentials(parsed.original))


def _apply_subdir(root: Path, subdir: str, uri: str) -> Path:
    """``root/subdir``, refusing anything that resolves (also via symlinks) outside ``root``."""
    if not subdir:
        return root
    candidate = (root / subdir).resolve()
    real_root = root.resolve()
    if candidate != real_root and real_root not in candidate.parents:
        raise ExecutionException(
            f"Project subdirectory '{subdir}' of {strip_credentials(uri)} resolves outside the "
            "project (through a symbolic link); use a path inside it."
        )
    if not candidate.is_dir():
        raise ExecutionException(
            f"Could not find subdirectory '{subdir}' of {strip_credentials(uri)} "
            f"(looked in {root}). Check the part after '#'."
        )
    return candidate
