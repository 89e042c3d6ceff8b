"""File primitives shared by every subsystem: atomic writes, create-once, append, lock, sizes.

They keep a store or cache readable while many processes write to it:

* :func:`write_atomic` - readers see the old content or the new one, never a partial file
  (temporary file in the same file system, then ``os.replace``); :func:`write_json_atomic` for
  the JSON caches and markers.
* :func:`create_once` - write a file only if it does not exist yet, atomically (temporary file,
  then ``os.link``, which fails when the target exists): two processes logging the same param
  cannot both win.
* :func:`append_bytes` - one ``write`` on an ``O_APPEND`` descriptor, so concurrent appenders
  (mlproj and ``mlflow.log_metric`` in the project) interleave whole lines, never bytes.
* :func:`exclusive_lock` - an advisory lock on a lock file (``flock``), cheap enough for the
  per-run hot path; the store root lock uses the ``filelock`` package instead.
* :func:`folder_size` - the bytes of the regular files under a folder (symlinks not followed).

Files are not fsync'ed: a run record costs a few milliseconds, not a disk flush per file.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "append_bytes",
    "create_once",
    "exclusive_lock",
    "folder_size",
    "temp_path",
    "write_atomic",
    "write_json_atomic",
]

_counter = itertools.count()
# link() is unsupported on a few file systems (some FUSE and SMB mounts): fall back to O_EXCL.
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV})


def temp_path(folder: Path, hint: str) -> Path:
    """A fresh hidden file name in ``folder``, unique per process and call."""
    return folder / f".tmp-{os.getpid()}-{next(_counter)}-{hint[-40:].replace('/', '_')}"


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Replace ``path`` with ``data`` in one step.

    ``tmp_dir`` must be on the same file system as ``path``; it defaults to the target's folder.
    The file store passes the run folder so that no temporary file ever appears among a run's
    ``params/`` or ``tags/`` (MLflow reads every file there as a key).
    """
    tmp = temp_path(tmp_dir or path.parent, path.name)
    try:
        _write_new(tmp, data)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def copy_into(source: Path, destination: Path) -> None:
    """Copy a file or folder into the folder ``destination`` (made if missing). A file is
    copied beside its target and renamed: a reader never sees half of it. Raises OSError."""
    import shutil  # here: it imports bz2 and lzma, unused by most commands

    destination.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination / source.name, dirs_exist_ok=True)
        return
    staging = temp_path(destination, source.name)
    try:
        shutil.copyfile(source, staging)
        staging.replace(destination / source.name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()


def write_json_atomic(path: Path, data: object, *, indent: int | None = 1) -> None:
    """Replace ``path`` with ``data`` as JSON in one step (sorted keys; unknown types as str)."""
    text = json.dumps(data, indent=indent, sort_keys=True, default=str)
    write_atomic(path, text.encode("utf-8"))


def create_once(path: Path, data: bytes, tmp_dir: Path | None = None) -> bool:
    """Create ``path`` with ``data`` unless it exists; True when this call created it."""
    tmp = temp_path(tmp_dir or path.parent, path.name)
    try:
        _write_new(tmp, data)
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
        try:
            _write_new(path, data)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return True


def append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` with a single write (whole lines stay whole under concurrency)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        written = os.write(fd, data)
        if written != len(data):  # only on a full disk or a signal; finish the line anyway
            os.write(fd, data[written:])
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_file`` (created if missing) for the block."""
    try:
        import fcntl
    except ImportError:  # Windows: the filelock package does the same with msvcrt
        from filelock import FileLock

        with FileLock(str(lock_file)):
            yield
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def folder_size(path: Path) -> int:
    """The total size of the regular files under ``path``; links and unreadable files skipped."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(dirpath, name))  # noqa: PTH118 - os.walk gives str
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
