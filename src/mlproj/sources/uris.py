"""Project URIs: splitting off ``#subdir`` and classifying the source."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mlproj.errors import ExecutionException
from mlproj.locations import file_uri_to_path
from mlproj.records import record
from mlproj.redaction import strip_credentials

SourceKind = Literal["local", "archive", "git"]

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

# git's scp-like syntax: user@host:path (no scheme, no slash before the colon).
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9._-]+:(?!//)")
_SSH_SCHEMES = {"ssh", "git+ssh", "ssh+git"}
# URL schemes git fetches by itself; any other needs a remote helper (git-remote-<scheme>).
_GIT_SCHEMES = {"http", "https", "git", "ftp", "ftps", *_SSH_SCHEMES}


@record(frozen=True)
class ProjectURI:
    original: str  # as the user gave it, quotes stripped
    base: str  # the part before the first '#'
    subdir: str  # normalised, '' when absent
    kind: SourceKind
    local_path: Path | None = None  # for local folders and local archives


def normalise_subdir(subdir: str, uri: str) -> str:
    """``subdir`` as a clean relative POSIX path; anything pointing outside is an error."""
    cleaned = subdir.strip().replace("\\", "/")
    if not cleaned:
        return ""
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        raise ExecutionException(
            f"Project subdirectory '{subdir}' in {strip_credentials(uri)} must be a relative path "
            "inside the project (e.g. 'uri#examples/train')."
        )
    normal = posixpath.normpath(cleaned)
    if normal == ".":
        return ""
    if normal == ".." or normal.startswith("../"):
        raise ExecutionException(
            f"Project subdirectory '{subdir}' in {strip_credentials(uri)} points outside the "
            "project; use a path inside it (e.g. 'uri#examples/train')."
        )
    return normal


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def has_scheme(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    # A Windows drive letter (C:\x) parses as a one-letter scheme.
    return len(scheme) > 1


def is_scp_like(uri: str) -> bool:
    return not has_scheme(uri) and _SCP_LIKE.match(uri) is not None


def parse_project_uri(uri: str) -> ProjectURI:
    """Split ``uri`` into base and subdir and say what kind of source it is."""
    original = uri.strip().strip("'\"")
    if not original:
        raise ExecutionException("The project URI is empty; give a folder, Git URL or archive.")
    base, _, raw_subdir = original.partition("#")
    subdir = normalise_subdir(raw_subdir, original)
    if has_scheme(base):
        return _parse_url(original, base, subdir)
    lowered = base.lower()
    path = Path(base).expanduser()
    if path.exists():
        kind: SourceKind = "archive" if path.is_file() and is_archive_name(lowered) else "local"
        return ProjectURI(original, base, subdir, kind, path.absolute())
    if is_scp_like(base):
        return ProjectURI(original, base, subdir, "git")
    raise ExecutionException(
        f"Project folder {base} does not exist. Give an existing folder, a Git URL "
        "(https://, ssh://, git@host:org/repo.git, file://) or an archive (.zip, .tar.gz)."
    )


def _check_git_scheme(scheme: str, uri: str) -> None:
    from mlproj.sources.gitcmd import has_remote_helper

    if scheme in _GIT_SCHEMES or has_remote_helper(scheme):
        return
    raise ExecutionException(
        f"Unsupported project URI scheme '{scheme}' in {strip_credentials(uri)}: give a local "
        "folder, a Git URL (https://, ssh://, git://, git@host:org/repo.git, file://) or an "
        "archive (.zip, .tar.gz: a local file or an http(s):// URL)."
    )


def _parse_url(original: str, base: str, subdir: str) -> ProjectURI:
    parts = urlsplit(base)
    lowered = parts.path.lower()
    scheme = parts.scheme.lower()
    if scheme != "file":
        if is_archive_name(lowered) and scheme in ("http", "https"):
            return ProjectURI(original, base, subdir, "archive")
        _check_git_scheme(scheme, original)
        return ProjectURI(original, base, subdir, "git")
    path = file_uri_to_path(base)
    if path is None:
        raise ExecutionException(
            f"Cannot read {strip_credentials(base)}: file URIs must point to this machine "
            "(file:///path or file://localhost/path)."
        )
    if is_archive_name(lowered) and path.is_file():
        return ProjectURI(original, base, subdir, "archive", path.absolute())
    if path.exists():
        return ProjectURI(original, base, subdir, "local", path.absolute())
    # A file:// URL to a missing path is left to git, which reports it clearly.
    return ProjectURI(original, base, subdir, "git")
