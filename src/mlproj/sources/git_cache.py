"""The Git cache: one bare mirror per URL, one immutable checkout per commit.

Layout under ``$MLPROJ_HOME/git``::

    mirrors/<key>.git          bare repository, refs updated by incremental fetches
    checkouts/<key>/<sha>/     the work tree of one commit (submodules included)
    locks/<key>.lock           serialises fetches and checkout creation for one URL

``<key>`` is a hash of the URL with credentials stripped; the credentials themselves are only
ever passed on git's command line, never written into the cache. A checkout is a local clone of
the mirror (hardlinked objects, so independent of later fetches or gc), built in a temporary
folder and renamed into place, so a half-built checkout is never seen; it is not modified
afterwards: concurrent runs of the same commit share it safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlproj.errors import ExecutionException
from mlproj.home import home_subdir
from mlproj.redaction import strip_credentials
from mlproj.sources.gitcmd import GitError, run_git

_FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-fA-F]{4,39}$")
_LOCK_TIMEOUT = 1800.0  # seconds to wait for another process fetching the same URL
_SCHEMA = 1
_MAX_SUBMODULE_DEPTH = 8


@dataclass(frozen=True)
class Resolved:
    commit: str  # full SHA
    branch: str | None  # set when the requested version named a branch


@dataclass(frozen=True)
class Checkout:
    directory: Path  # work tree root
    commit: str
    branch: str | None


def cache_key(url: str) -> str:
    return hashlib.sha256(strip_credentials(url).encode("utf-8")).hexdigest()[:24]


class GitCache:
    """Mirrors and checkouts for one repository URL."""

    def __init__(
        self,
        url: str,
        root: Path | None = None,
        *,
        origin_url: str | None = None,
        local_git_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url  # may carry credentials: only passed to git's argv
        self.public_url = strip_credentials(url)
        # For a local repository: its own remote (relative submodule URLs resolve against it)
        # and its git dir, whose already-cloned submodules are used instead of the network.
        self.origin_url = strip_credentials(origin_url) if origin_url else self.public_url
        self.local_git_dir = local_git_dir
        self.log: Callable[[str], None] = log or (lambda _line: None)
        self.key = cache_key(url)
        self.root = root if root is not None else home_subdir("git")
        self.mirror = self.root / "mirrors" / f"{self.key}.git"
        self.checkouts = self.root / "checkouts" / self.key
        self.lock_path = self.root / "locks" / f"{self.key}.lock"

    # -- public -------------------------------------------------------------------------------

    def checkout(self, version: str | None, subdir: str = "") -> Checkout:
        """An isolated work tree of ``version`` (default: the remote's default branch).

        A ``subdir`` missing at that commit fails before any checkout is built.
        """
        if version is not None and _FULL_SHA.match(version):
            ready = self.checkouts / version.lower()
            if ready.is_dir():  # a cached commit needs neither the network nor a lock
                return Checkout(ready, version.lower(), None)
            advertised = None  # ls-remote cannot tell us about a commit; the mirror can
        else:
            advertised = self._ls_remote()
        resolved = self._from_advertised(version, advertised) if advertised is not None else None
        if resolved is not None and (self.checkouts / resolved.commit).is_dir():
            # Cached branch or tag: one ls-remote round trip, no lock, no fetch.
            return Checkout(self.checkouts / resolved.commit, resolved.commit, resolved.branch)
        with self._lock():
            if resolved is None:
                resolved = self._resolve_in_mirror(version)
            else:
                self._ensure_commit(resolved.commit)
            ready = self.checkouts / resolved.commit
            if not ready.is_dir():
                self._check_subdir(resolved.commit, subdir)
                self._build_checkout(resolved.commit, ready)
        return Checkout(ready, resolved.commit, resolved.branch)

    def _check_subdir(self, sha: str, subdir: str) -> None:
        """Fail fast on a mistyped ``#subdir``, listing the folders that do exist."""
        parts = [part for part in subdir.split("/") if part]
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            try:
                kind = run_git(["cat-file", "-t", f"{sha}:{prefix}"], git_dir=self.mirror).strip()
            except GitError:
                kind = ""
            if kind == "commit":
                return  # inside a submodule: checked after checkout
            if kind != "tree":
                parent = "/".join(parts[: depth - 1])
                try:
                    listing = run_git(
                        ["ls-tree", "-d", "--name-only", f"{sha}:{parent}" if parent else sha],
                        git_dir=self.mirror,
                    ).splitlines()
                except GitError:
                    listing = []
                shown = ", ".join(listing[:20]) or "none"
                raise ExecutionException(
                    f"Could not find subdirectory '{subdir}' in {self.public_url} at commit "
                    f"{sha[:12]}: there is no folder '{prefix}'. Folders in "
                    f"'{parent or '/'}': {shown}."
                )

    # -- resolution ---------------------------------------------------------------------------

    def _ls_remote(self) -> dict[str, str]:
        """Every advertised ref -> SHA (tags peeled), plus ``HEAD`` and ``symref:HEAD``."""
        try:
            out = run_git(["ls-remote", "--symref", self.url], secret_url=self.url, network=True)
        except GitError as err:
            raise ExecutionException(
                f"Cannot reach Git repository {self.public_url}: {err.stderr or 'git failed'}. "
                "Check the URL, your network and your credentials (credential helper, ssh agent "
                "or a token in the URL); mlproj never prompts for a password."
            ) from None
        refs: dict[str, str] = {}
        for line in out.splitlines():
            value, _, name = line.partition("\t")
            if value.startswith("ref: "):
                refs[f"symref:{name}"] = value[5:]
            elif name.endswith("^{}"):
                refs[name[:-3]] = value  # a peeled tag: the commit it points at
            else:
                refs.setdefault(name, value)
        return refs

    def _from_advertised(self, version: str | None, advertised: dict[str, str]) -> Resolved | None:
        """Resolve ``version`` from the remote's refs alone (None: not a ref name)."""
        if version is None:
            return self._default_branch(advertised)
        for ref, is_branch in ((f"refs/heads/{version}", True), (f"refs/tags/{version}", False)):
            if ref in advertised:
                return Resolved(advertised[ref], version if is_branch else None)
        tracking = [
            ref
            for ref in advertised
            if ref.startswith("refs/remotes/") and ref.split("/", 3)[-1] == version
        ]
        if len(tracking) == 1:  # a local repository's remote-tracking branch
            return Resolved(advertised[tracking[0]], version)
        if version.startswith("refs/") and version in advertised:
            branch = version.removeprefix("refs/heads/") if "refs/heads/" in version else None
            return Resolved(advertised[version], branch)
        return None

    def _resolve_in_mirror(self, version: str | None) -> Resolved:
        """A full or unique short SHA, looked up in the mirror (fetched if needed)."""
        if version is not None and _FULL_SHA.match(version):
            sha = version.lower()
            self._ensure_commit(sha, fetch_by_id=True)
            return Resolved(sha, None)
        if version is not None and _SHORT_SHA.match(version):
            found = self._find_short_sha(version.lower())
            if found is not None:
                return Resolved(found, None)
        raise self._unknown_version(str(version))

    def _default_branch(self, advertised: dict[str, str]) -> Resolved:
        sha = advertised.get("HEAD")
        if sha is None:
            target = advertised.get("symref:HEAD")
            sha = advertised.get(target) if target else None
        if sha is None:
            raise ExecutionException(
                f"Git repository {self.public_url} has no default branch (empty repository or "
                "no HEAD). Pass a version with -v/--version; list refs with "
                f"`git ls-remote {self.public_url}`."
            )
        return Resolved(sha, None)

    def _find_short_sha(self, prefix: str) -> str | None:
        if not self._mirror_has(prefix):
            self._fetch()
        try:
            out = run_git(["rev-parse", "--disambiguate=" + prefix], git_dir=self.mirror).split()
        except GitError:
            return None
        commits = [sha for sha in out if self._is_commit(sha)]
        if len(commits) > 1:
            raise ExecutionException(
                f"Version '{prefix}' of {self.public_url} is ambiguous: it matches commits "
                f"{', '.join(c[:12] for c in commits)}. Give more characters of the SHA."
            )
        return commits[0] if commits else None

    def _unknown_version(self, version: str) -> ExecutionException:
        return ExecutionException(
            f"Version '{version}' not found in Git repository {self.public_url}: it is not a "
            "branch, tag or commit there. List the available refs with "
            f"`git ls-remote {self.public_url}`."
        )

    # -- mirror -------------------------------------------------------------------------------

    def _ensure_mirror(self) -> None:
        if (self.mirror / "HEAD").is_file():
            return
        self.mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=self.mirror.parent))
        try:
            run_git(["init", "--bare", "-q", str(tmp)])
            meta = {"schema": _SCHEMA, "url": self.public_url}
            (tmp / "mlproj.json").write_text(json.dumps(meta), encoding="utf-8")
            tmp.rename(self.mirror)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _mirror_has(self, rev: str) -> bool:
        if not (self.mirror / "HEAD").is_file():
            return False
        return self._is_commit(rev)

    def _is_commit(self, rev: str) -> bool:
        return _has_commit(self.mirror, rev)

    def _fetch(self, *extra_refspecs: str) -> None:
        """Incremental fetch of all branches and tags (and any ``extra_refspecs``)."""
        self._ensure_mirror()
        self.log(f"Fetching {self.public_url} into the Git cache")
        refspecs = extra_refspecs or (
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
            # Only local repositories advertise these: their remote-tracking branches.
            "+refs/remotes/*:refs/remotes/*",
        )
        try:
            run_git(
                ["fetch", "--quiet", "--prune", self.url, *refspecs],
                git_dir=self.mirror,
                secret_url=self.url,
                network=True,
                transfer=True,
            )
        except GitError as err:
            raise ExecutionException(
                f"Fetching Git repository {self.public_url} failed: {err.stderr}. Check the URL, "
                "your network and your credentials; mlproj never prompts for a password."
            ) from None

    def _ensure_commit(self, sha: str, *, fetch_by_id: bool = False) -> None:
        if self._mirror_has(sha):
            return
        self._fetch()
        if self._mirror_has(sha):
            return
        if fetch_by_id:
            # A commit no branch or tag reaches any more: ask for it by id (servers may refuse).
            with contextlib.suppress(ExecutionException):
                self._fetch(sha)
            if self._mirror_has(sha):
                return
            raise self._unknown_version(sha)
        raise ExecutionException(
            f"Git repository {self.public_url} advertised commit {sha} but fetching it failed; "
            "try again (the repository may have changed during the fetch)."
        )

    # -- checkouts ----------------------------------------------------------------------------

    def _build_checkout(self, sha: str, target: Path) -> None:
        self.checkouts.mkdir(parents=True, exist_ok=True)
        self.log(f"Checking out {sha[:12]} of {self.public_url} into {target}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=self.checkouts))
        try:
            run_git(["clone", "--quiet", "--no-checkout", "--local", str(self.mirror), str(tmp)])
            # Relative submodule URLs resolve against origin: point it at the real repository.
            run_git(["remote", "set-url", "origin", self.origin_url], cwd=tmp)
            run_git(["-c", "advice.detachedHead=false", "checkout", "--quiet", sha], cwd=tmp)
            if (tmp / ".gitmodules").is_file():
                self._update_submodules(tmp)
            tmp.rename(target)
        except GitError as err:
            raise ExecutionException(
                f"Checking out commit {sha} of {self.public_url} failed: {err.stderr}"
            ) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _update_submodules(self, work_tree: Path, depth: int = 0) -> None:
        """Check out every submodule of ``work_tree`` from its own mirror, recursively.

        Each submodule URL (relative ones resolved against origin) gets a mirror in this cache,
        so a new commit of the parent does not clone its submodules from the network again.
        For a local repository, submodules the user already cloned are used instead.
        Credentials in the parent's URL are lent (on git's command line only) to submodules on
        the same server; others authenticate through helpers or ssh agents.
        """
        if depth > _MAX_SUBMODULE_DEPTH:
            raise ExecutionException(
                f"Submodules of {self.public_url} are nested more than {_MAX_SUBMODULE_DEPTH} "
                "levels deep; is there a cycle?"
            )
        try:
            run_git(["submodule", "init", "--quiet"], cwd=work_tree)
            listed = run_git(
                ["config", "--local", "--get-regexp", r"^submodule\..*\.url$"], cwd=work_tree
            )
        except GitError as err:
            raise ExecutionException(
                f"Reading the submodules of {self.public_url} failed: {err.stderr}"
            ) from None
        for line in listed.splitlines():
            key, _, url = line.partition(" ")
            name = key[len("submodule.") : -len(".url")]
            self._checkout_submodule(work_tree, name, url.strip(), depth)

    def _checkout_submodule(self, work_tree: Path, name: str, url: str, depth: int) -> None:
        try:
            path = run_git(
                ["config", "-f", ".gitmodules", f"submodule.{name}.path"], cwd=work_tree
            ).strip()
            entry = run_git(["ls-tree", "HEAD", "--", path], cwd=work_tree).split()
        except GitError:
            return  # listed in .gitmodules but not in the tree: nothing to check out
        if len(entry) < 3 or entry[1] != "commit":
            return
        sha = entry[2]
        own_clone = self.local_git_dir / "modules" / name if self.local_git_dir else None
        if own_clone is not None and not _has_commit(own_clone, sha):
            own_clone = None  # the user's clone of it is older: use the mirror
        fetch_url = _lend_credentials(self.url, url)
        sub = GitCache(fetch_url, root=self.root, local_git_dir=own_clone, log=self.log)
        if sub.local_git_dir is not None:
            source = str(sub.local_git_dir)
        else:
            try:
                if sub.key == self.key:  # a repository that is its own submodule
                    sub._ensure_commit(sha, fetch_by_id=True)
                else:
                    with sub._lock():
                        sub._ensure_commit(sha, fetch_by_id=True)
            except ExecutionException as err:
                raise ExecutionException(
                    f"Submodule '{name}' of {self.public_url}: {err.message}"
                ) from None
            source = str(sub.mirror)
        try:
            run_git(["config", f"submodule.{name}.url", source], cwd=work_tree)
            run_git(
                ["-c", "protocol.file.allow=always", "submodule", "update", "--quiet", "--", path],
                cwd=work_tree,
            )
            # Record the real URL, so nested relative URLs resolve and users see where it is from.
            run_git(["config", f"submodule.{name}.url", sub.public_url], cwd=work_tree)
            run_git(["remote", "set-url", "origin", sub.public_url], cwd=work_tree / path)
        except GitError as err:
            raise ExecutionException(
                f"Checking out submodule '{name}' ({sub.public_url}) of {self.public_url} "
                f"failed: {err.stderr}"
            ) from None
        if (work_tree / path / ".gitmodules").is_file():
            sub._update_submodules(work_tree / path, depth + 1)

    # -- locking ------------------------------------------------------------------------------

    def _lock(self) -> _Lock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        return _Lock(self.lock_path, self.public_url)


class _Lock:
    """A file lock with a message when another process holds it too long."""

    def __init__(self, path: Path, url: str) -> None:
        from filelock import FileLock

        self._lock = FileLock(str(path), timeout=_LOCK_TIMEOUT)
        self._url = url

    def __enter__(self) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise ExecutionException(
                f"Another mlproj process has been fetching {self._url} for over "
                f"{_LOCK_TIMEOUT:.0f} s; wait for it or remove {self._lock.lock_file}."
            ) from None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _lend_credentials(parent_url: str, url: str) -> str:
    """``url`` with the parent's URL credentials when both are on the same server.

    They only ever reach git's command line (the cache stores URLs without them), so a private
    repository with private submodules on the same host works with one token.
    """
    parent = urlsplit(parent_url)
    child = urlsplit(url)
    if "@" not in parent.netloc or "@" in child.netloc:
        return url
    userinfo, _, parent_host = parent.netloc.rpartition("@")
    if (parent.scheme, parent_host) != (child.scheme, child.netloc):
        return url
    return urlunsplit(child._replace(netloc=f"{userinfo}@{child.netloc}"))


def _has_commit(git_dir: Path, sha: str) -> bool:
    if not (git_dir / "HEAD").is_file():
        return False
    try:
        run_git(["cat-file", "-e", f"{sha}^{{commit}}"], git_dir=git_dir)
    except GitError:
        return False
    return True


__all__ = ["Checkout", "GitCache", "Resolved", "cache_key"]
