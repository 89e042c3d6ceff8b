"""Project archives (.zip, .tar, .tar.gz, .tgz, ...) from http(s) or local files.

Each archive is extracted once into ``$MLPROJ_HOME/archives/<sha256 of its bytes>``. Every
member is checked *before* anything is written: absolute names, ``..`` components, and links
that point outside the target folder reject the whole archive, so a bad archive extracts nothing.
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from mlproj.downloads import http_download
from mlproj.errors import ExecutionException, one_line
from mlproj.home import home_subdir
from mlproj.redaction import strip_credentials

_CHUNK = 1 << 20


def fetch_archive(
    uri: str, local_path: Path | None, log: Callable[[str], None] | None = None
) -> Path:
    """Extract the archive at ``uri`` (or ``local_path``) into the cache; return the folder."""
    root = home_subdir("archives")
    public = strip_credentials(uri)
    say = log or (lambda _line: None)
    if local_path is not None:
        digest = _hash_file(local_path)
        return _extract_cached(local_path, digest, root, public, say)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
        name = posixpath.basename(uri.split("?", 1)[0]) or "archive"
        downloaded = Path(tmp) / name
        say(f"Downloading {public}")
        digest = http_download(uri, downloaded, what="archive ")
        return _extract_cached(downloaded, digest, root, public, say)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_cached(
    archive: Path, digest: str, root: Path, public: str, say: Callable[[str], None]
) -> Path:
    from filelock import FileLock

    target = root / digest[:32]
    if target.is_dir():
        return target
    with FileLock(str(root / f".{digest[:32]}.lock")):
        if target.is_dir():
            return target
        say(f"Extracting {public} into {target}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
        try:
            extract_safely(archive, tmp, public)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract_safely(archive: Path, dest: Path, public: str) -> None:
    """Check every member of ``archive``, then extract it into ``dest``."""
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    _check_zip_member(info, public)
                zipped.extractall(dest)  # noqa: S202 - every member checked above
            return
        with tarfile.open(archive) as tarred:
            members = tarred.getmembers()
            for member in members:
                _check_tar_member(member, public)
            if hasattr(tarfile, "data_filter"):
                tarred.extractall(dest, members=members, filter="data")
            else:  # Python < 3.10.12: our checks above are the protection
                tarred.extractall(dest, members=members)  # noqa: S202 - members checked above
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        filter_error = getattr(tarfile, "FilterError", None)  # Python >= 3.10.12
        if filter_error is not None and isinstance(err, filter_error):
            raise ExecutionException(
                f"Archive {public} was rejected: {one_line(str(err))}. Nothing was extracted."
            ) from None
        raise ExecutionException(
            f"Cannot read archive {public}: {one_line(str(err))}. Is it a valid .zip or .tar(.gz) "
            "file?"
        ) from None


def _reject(public: str, member: str, why: str) -> ExecutionException:
    return ExecutionException(
        f"Archive {public} was rejected: member '{member}' {why}. Nothing was extracted; "
        "repack the archive with paths relative to its root."
    )


def _inside(path: str) -> bool:
    """True when the relative POSIX ``path`` stays inside the extraction folder."""
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return False
    normal = posixpath.normpath(path)
    return normal != ".." and not normal.startswith("../")


def _check_zip_member(info: zipfile.ZipInfo, public: str) -> None:
    name = info.filename.replace("\\", "/")
    if not _inside(name):
        raise _reject(public, info.filename, "would be written outside the target folder")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        # zipfile writes links as plain files; refuse them anyway, they were meant as links.
        raise _reject(public, info.filename, "is a symbolic link")


def _check_tar_member(member: tarfile.TarInfo, public: str) -> None:
    name = member.name.replace("\\", "/")
    if not _inside(name):
        raise _reject(public, member.name, "would be written outside the target folder")
    if member.issym():
        # A symlink target is relative to the link's own folder.
        target = posixpath.join(posixpath.dirname(name), member.linkname)
        if member.linkname.startswith("/") or not _inside(target):
            raise _reject(public, member.name, f"is a link pointing outside ({member.linkname})")
    elif member.islnk():
        if not _inside(member.linkname.replace("\\", "/")):
            raise _reject(public, member.name, f"is a link pointing outside ({member.linkname})")
    elif not (member.isfile() or member.isdir()):
        raise _reject(public, member.name, "is a device or pipe, not a file or folder")


def project_root(extracted: Path) -> Path:
    """The archive root, or its single top folder when the root holds only that folder."""
    entries = [entry for entry in extracted.iterdir() if entry.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not (extracted / "MLproject").exists():
        return entries[0]
    return extracted
