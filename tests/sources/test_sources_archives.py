"""Project archives served by a real local HTTP server, and archives that try to escape."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from mlproj.errors import ExecutionException
from mlproj.sources import fetch_project

TarWriteMode = Literal["w", "w:gz"]

MLPROJECT = "name: packed\nentry_points:\n  main:\n    command: 'true'\n"


def make_zip(path: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr(f"{prefix}MLproject", MLPROJECT)
        zipped.writestr(f"{prefix}train.py", "print('hi')\n")
        zipped.writestr(f"{prefix}sub.d/MLproject", "name: inner\n")


def make_tar(path: Path, mode: TarWriteMode, prefix: str = "") -> None:
    with tarfile.open(path, mode) as tarred:
        for name, text in (
            ("MLproject", MLPROJECT),
            ("train.py", "print('hi')\n"),
            ("sub.d/MLproject", "name: inner\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tarred.addfile(info, io.BytesIO(data))


def archives_dir() -> Path:
    return Path(os.environ["MLPROJ_HOME"]) / "archives"


def extracted_entries() -> list[str]:
    root = archives_dir()
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


@pytest.mark.parametrize(
    ("name", "mode"), [("p.zip", None), ("p.tar.gz", "w:gz"), ("p.tgz", "w:gz"), ("p.tar", "w")]
)
def test_archive_over_http(
    http_folder: tuple[Path, str], name: str, mode: TarWriteMode | None
) -> None:
    root, base = http_folder
    if mode is None:
        make_zip(root / name)
    else:
        make_tar(root / name, mode)
    uri = f"{base}/{name}"
    fetched = fetch_project(uri)
    assert (fetched.directory / "MLproject").read_text() == MLPROJECT
    assert (fetched.directory / "train.py").is_file()
    assert fetched.source_name == uri
    assert fetched.git_commit is None
    again = fetch_project(uri)
    assert again.directory == fetched.directory  # cached by content hash
    inner = fetch_project(uri + "#sub.d")
    assert (inner.directory / "MLproject").read_text() == "name: inner\n"
    assert inner.source_name == uri + "#sub.d"


def test_archive_with_top_folder_and_local_paths(tmp_path: Path) -> None:
    archive = tmp_path / "repo-main.tar.gz"
    make_tar(archive, "w:gz", prefix="repo-main/")
    fetched = fetch_project(str(archive))
    assert fetched.directory.name == "repo-main"  # a lone top folder is the project
    assert (fetched.directory / "MLproject").is_file()
    assert fetched.source_name == str(archive)
    by_uri = fetch_project(archive.as_uri())
    assert by_uri.directory == fetched.directory
    inner = fetch_project(f"{archive}#repo-main/sub.d")
    assert (inner.directory / "MLproject").read_text() == "name: inner\n"
    with pytest.raises(ExecutionException, match="only supported for Git"):
        fetch_project(str(archive), version="main")


def test_credentials_stripped_and_http_errors(http_folder: tuple[Path, str]) -> None:
    root, base = http_folder
    make_zip(root / "p.zip")
    secret_uri = base.replace("http://", "http://bob:pa55wordSECRET@") + "/p.zip"
    fetched = fetch_project(secret_uri)
    assert fetched.source_name == f"{base}/p.zip"
    with pytest.raises(ExecutionException) as info:
        fetch_project(base.replace("http://", "http://bob:pa55wordSECRET@") + "/missing.zip")
    assert "HTTP 404" in str(info.value)
    assert "pa55wordSECRET" not in str(info.value)
    assert f"{base}/missing.zip" in str(info.value)


def evil_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("MLproject", MLPROJECT)
        zipped.writestr("../evil.txt", "pwned")


def evil_tar_absolute(path: Path, target: Path) -> None:
    with tarfile.open(path, "w:gz") as tarred:
        for name in ("MLproject", str(target)):
            info = tarfile.TarInfo(name)
            info.size = 5
            tarred.addfile(info, io.BytesIO(b"pwned"))


def evil_tar_symlink(path: Path, outside: Path) -> None:
    with tarfile.open(path, "w") as tarred:
        good = tarfile.TarInfo("MLproject")
        good.size = 5
        tarred.addfile(good, io.BytesIO(b"name:"))
        link = tarfile.TarInfo("escape")
        link.type = tarfile.SYMTYPE
        link.linkname = str(outside)
        tarred.addfile(link)
        through = tarfile.TarInfo("escape/evil.txt")
        through.size = 5
        tarred.addfile(through, io.BytesIO(b"pwned"))


def evil_tar_relative_symlink(path: Path) -> None:
    with tarfile.open(path, "w") as tarred:
        link = tarfile.TarInfo("a/up")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../.."
        tarred.addfile(link)


def evil_tar_hardlink(path: Path, outside: Path) -> None:
    with tarfile.open(path, "w") as tarred:
        link = tarfile.TarInfo("innocent.txt")
        link.type = tarfile.LNKTYPE
        link.linkname = str(outside / "target.txt")
        tarred.addfile(link)


def test_traversal_archives_extract_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cases: dict[str, Callable[[Path], None]] = {
        "zip-dotdot.zip": evil_zip,
        "tar-absolute.tar.gz": lambda p: evil_tar_absolute(p, outside / "abs.txt"),
        "tar-symlink.tar": lambda p: evil_tar_symlink(p, outside),
        "tar-relative-link.tar": evil_tar_relative_symlink,
        "tar-hardlink.tar": lambda p: evil_tar_hardlink(p, outside),
    }
    for name, build in cases.items():
        archive = tmp_path / name
        build(archive)
        with pytest.raises(ExecutionException) as info:
            fetch_project(str(archive))
        message = str(info.value)
        assert "was rejected" in message and "Nothing was extracted" in message, message
        assert extracted_entries() == [], name  # not even the harmless MLproject
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ExecutionException, match="Cannot read archive"):
        fetch_project(str(bad))
    assert extracted_entries() == []
