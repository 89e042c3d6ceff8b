"""Reproducible tarballs of a project folder: same files in, same bytes (and hash) out.

Entries are sorted, mtimes and owners zeroed and the gzip header carries no timestamp, so the
archive's sha256 addresses the content (Databricks skips uploading what is already there;
Kubernetes image tags reuse a build of the same code).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

DEFAULT_EXCLUDES = ("mlruns", ".git", "__pycache__")


def project_archive(
    directory: Path,
    top: str,
    *,
    exclude: Iterable[str] = DEFAULT_EXCLUDES,
    extra_files: Mapping[str, bytes] | None = None,
) -> bytes:
    """A gzip tar of ``directory`` under the folder name ``top``, plus ``extra_files`` (name ->
    content) at the archive root. Entries named in ``exclude`` are skipped at any depth."""
    skip = set(exclude)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_dir_info(top))
        for path in _walk(directory, skip):
            rel = path.relative_to(directory).as_posix()
            info = tar.gettarinfo(str(path), arcname=f"{top}/{rel}")
            _normalise(info)
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
        for name, content in sorted((extra_files or {}).items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            _normalise(info)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(directory: Path, skip: set[str]) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        base = Path(root)
        found.extend(base / d for d in dirs)
        found.extend(base / f for f in sorted(files) if f not in skip)
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    _normalise(info)
    return info


def _normalise(info: tarfile.TarInfo) -> None:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
