"""Local folders: run in place, with the Git facts MLflow records, read without spawning git.

This is on the path of every local run, so the common case (a plain ``.git`` folder) only reads
a few small files: ``HEAD``, the loose ref or ``packed-refs``, and ``config``. Worktrees and
other unusual layouts fall back to the ``git`` command.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.records import record
from mlproj.redaction import strip_credentials
from mlproj.sources.base import FetchedProject
from mlproj.sources.gitcmd import GitError, run_git

_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_REMOTE_SECTION = re.compile(r'^\s*\[\s*remote\s+"(?P<name>(?:[^"\\]|\\.)*)"\s*\]')
_SECTION = re.compile(r"^\s*\[")
_URL_LINE = re.compile(r"^\s*url\s*=\s*(?P<url>.*?)\s*$", re.IGNORECASE)


@record(frozen=True)
class GitFacts:
    root: Path  # the working tree's top folder
    commit: str | None  # HEAD, None on an unborn branch
    remote_url: str | None  # first remote, credentials stripped


def find_git_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding a ``.git`` entry."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_facts(directory: Path) -> GitFacts | None:
    """HEAD commit and first remote of the work tree holding ``directory`` (None: not in Git)."""
    root = find_git_root(directory)
    if root is None:
        return None
    dot_git = root / ".git"
    facts = _read_plain_git_dir(root, dot_git) if dot_git.is_dir() else None
    if facts is None:
        facts = _ask_git(directory)
    if facts is None:
        return None
    # Only a folder without tracked files can be git-ignored: ask git about that case alone.
    if (
        directory != facts.root
        and not _has_tracked_files(facts.root, directory)
        and _is_ignored(directory, facts.root)
    ):
        return None
    return facts


def _has_tracked_files(root: Path, directory: Path) -> bool:
    """True when the index (v2/v3) lists a file under ``directory``; False when unsure.

    Index entries end with 2 bytes of flags (low 12 bits: path length), v3 entries with the
    extended bit add 2 more, then the path and NUL padding. Finding ``<relative>/`` right after
    such a header is a cheap exact test that saves spawning `git check-ignore`.
    """
    try:
        relative = directory.relative_to(root).as_posix().encode("utf-8") + b"/"
        data = (root / ".git" / "index").read_bytes()
    except (ValueError, OSError):
        return False
    if data[:4] != b"DIRC" or data[4:8] not in (b"\x00\x00\x00\x02", b"\x00\x00\x00\x03"):
        return False  # v4 compresses paths: let git answer
    start = data.find(relative, 12)
    while start != -1:
        end = data.find(b"\x00", start)
        length = min(end - start, 0xFFF) if end != -1 else -1
        for offset, extended in ((2, False), (4, True)):
            if start - offset < 12:
                continue
            flags = int.from_bytes(data[start - offset : start - offset + 2], "big")
            if flags & 0xFFF == length and bool(flags & 0x4000) == extended:
                return True
        start = data.find(relative, start + 1)
    return False


def _read_plain_git_dir(root: Path, git_dir: Path) -> GitFacts | None:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if (git_dir / "commondir").exists() or (git_dir / "reftable").exists():
            return None  # a linked worktree, or refs in reftable format: let git resolve them
        commit: str | None
        if head.startswith("ref:"):
            commit = _resolve_ref(git_dir, head[4:].strip())
        elif _SHA.match(head):
            commit = head
        else:
            return None
        remote = _first_remote_url(git_dir / "config")
    except (OSError, UnicodeDecodeError):
        return None
    return GitFacts(root, commit, strip_credentials(remote) if remote else None)


def _resolve_ref(git_dir: Path, ref: str, depth: int = 0) -> str | None:
    loose = git_dir / ref
    if loose.is_file():
        value = loose.read_text(encoding="utf-8").strip()
        if value.startswith("ref:") and depth < 5:
            return _resolve_ref(git_dir, value[4:].strip(), depth + 1)
        return value if _SHA.match(value) else None
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.match(sha):
                return sha
    return None  # unborn branch: no commit yet


def _first_remote_url(config: Path) -> str | None:
    """The URL of the first ``[remote "..."]`` section, in file order (GitPython's order)."""
    if not config.is_file():
        return None
    in_remote = False
    for line in config.read_text(encoding="utf-8").splitlines():
        if _REMOTE_SECTION.match(line):
            in_remote = True
            continue
        if _SECTION.match(line):
            in_remote = False
            continue
        if in_remote:
            found = _URL_LINE.match(line)
            if found:
                return found.group("url").strip('"')
    return None


def _ask_git(directory: Path) -> GitFacts | None:
    """Fallback for worktrees, ``.git`` files (submodules) and other layouts."""
    try:
        root = Path(run_git(["rev-parse", "--show-toplevel"], cwd=directory).strip())
    except (GitError, ExecutionException):  # not a work tree, or git not installed
        return None
    try:
        commit: str | None = run_git(["rev-parse", "--verify", "-q", "HEAD"], cwd=root).strip()
    except GitError:
        commit = None
    try:
        remotes = run_git(["remote"], cwd=root).split()
        url = run_git(["remote", "get-url", remotes[0]], cwd=root).strip() if remotes else None
    except GitError:
        url = None
    return GitFacts(root, commit or None, strip_credentials(url) if url else None)


def _is_ignored(directory: Path, root: Path) -> bool:
    try:
        run_git(["check-ignore", "-q", str(directory)], cwd=root)
    except GitError:
        return False  # exit 1: not ignored (or git unavailable: assume tracked)
    except ExecutionException:
        return False  # git not installed
    return True


def fetch_local(directory: Path) -> FetchedProject:
    """A local folder, used in place; Git tags when it lives inside a work tree."""
    if not directory.is_dir():
        raise ExecutionException(
            f"Project path {directory} is not a folder; give a project folder or an archive "
            "(.zip, .tar.gz, .tgz, .tar)."
        )
    facts = git_facts(directory)
    if facts is None:
        return FetchedProject(directory=directory, source_name=str(directory))
    relative = directory.relative_to(facts.root).as_posix() if directory != facts.root else ""
    name = f"file://{facts.root}" + (f"#{relative}" if relative else "")
    return FetchedProject(
        directory=directory,
        source_name=name,
        git_commit=facts.commit,
        git_repo_url=facts.remote_url,
    )


def is_bare_repo(directory: Path) -> bool:
    """A bare repository (``repo.git``): Git data but no work tree to run in place."""
    return (
        (directory / "HEAD").is_file()
        and (directory / "objects").is_dir()
        and (directory / "refs").is_dir()
        and not (directory / "MLproject").exists()
    )
