"""Project inputs built to write outside their folder: refused, with nothing written outside.

Archives (zip slip, absolute and drive paths, symlink chains, links then files through them,
hard links) and Git repositories (submodule names and paths with ``..``), each against the real
extraction code and the real ``git``.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.sources import fetch_project
from tests.sources.sources_git_cli import git

MLPROJECT = b"name: evil\nentry_points:\n  main:\n    command: 'true'\n"


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w") as tarred:
        info = tarfile.TarInfo("MLproject")
        info.size = len(MLPROJECT)
        tarred.addfile(info, io.BytesIO(MLPROJECT))
        for member, data in members:
            if data is not None:
                member.size = len(data)
            tarred.addfile(member, io.BytesIO(data) if data is not None else None)


def _link(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _file(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([_link("up", ".."), _file("up/evil.txt")], id="symlink-up-then-file"),
        pytest.param([_link("a", "b"), _link("b", "../..")], id="symlink-chain"),
        pytest.param([_link("here", "."), _file("here/../../evil.txt")], id="dotdot-through-link"),
        pytest.param([_file("sub/../../evil.txt")], id="dotdot-in-name"),
        pytest.param([_link("abs", "/etc/passwd")], id="absolute-symlink"),
        pytest.param([_link("hard", "/etc/passwd", hard=True)], id="absolute-hardlink"),
        pytest.param([_link("hard", "../outside.txt", hard=True)], id="relative-hardlink"),
        pytest.param([_file("/tmp/mlproj-evil-absolute.txt")], id="absolute-name"),
    ],
)
def test_tar_escapes_are_refused_and_nothing_is_written_outside(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "evil.tar"
    _tar(archive, members)
    before = _files_under(tmp_path)
    with pytest.raises(ExecutionException, match="was rejected") as info:
        fetch_project(str(archive))
    assert "\n" not in str(info.value)
    created = _files_under(tmp_path) - before
    home = Path(os.environ["MLPROJ_HOME"]).relative_to(tmp_path)
    # Only mlproj's own cache folders may appear, and none of them holds an extracted file.
    assert all(name.startswith(str(home)) for name in created), created
    assert not any(name.endswith(("evil.txt", "MLproject")) for name in created), created
    assert not Path("/tmp/mlproj-evil-absolute.txt").exists()


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/tmp/mlproj-evil-zip.txt", "C:\\evil.txt", "a\\..\\..\\evil.txt"]
)
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("MLproject", MLPROJECT)
        zipped.writestr(name, b"pwned\n")
    with pytest.raises(ExecutionException, match="was rejected"):
        fetch_project(str(archive))
    assert not (tmp_path.parent / "evil.txt").exists()
    assert not Path("/tmp/mlproj-evil-zip.txt").exists()


def test_a_zip_symlink_is_refused(tmp_path: Path) -> None:
    """zipfile would write the link as a file holding its target; it was meant as a link out."""
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("MLproject", MLPROJECT)
        link = zipfile.ZipInfo("outside")
        link.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK | rwx, as Info-ZIP stores it
        zipped.writestr(link, "../../..")
    with pytest.raises(ExecutionException, match="is a symbolic link"):
        fetch_project(str(archive))
    assert not list(Path(os.environ["MLPROJ_HOME"]).rglob("outside"))


def _repository_with_gitmodules(tmp_path: Path, gitmodules: str) -> Path:
    """A bare repository whose tree has a gitlink at ``vendor`` and the given .gitmodules."""
    leaf = tmp_path / "leaf"
    git("init", "-q", str(leaf))
    (leaf / "x.txt").write_text("x\n")
    git("add", ".", cwd=leaf)
    git("commit", "-qm", "leaf", cwd=leaf)
    sha = git("rev-parse", "HEAD", cwd=leaf)
    work = tmp_path / "proj"
    git("init", "-q", str(work))
    (work / "MLproject").write_bytes(MLPROJECT)
    (work / ".gitmodules").write_text(gitmodules.replace("LEAF", str(leaf)))
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},vendor", cwd=work)
    git("add", "MLproject", ".gitmodules", cwd=work)
    git("commit", "-qm", "proj", cwd=work)
    bare = tmp_path / "proj.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare


@pytest.mark.parametrize(
    "gitmodules",
    [
        pytest.param('[submodule "../../../evil"]\n\tpath = vendor\n\turl = LEAF\n', id="name"),
        pytest.param(
            '[submodule "vendor"]\n\tpath = vendor\n\turl = LEAF\n'
            '[submodule "out"]\n\tpath = ../../outside\n\turl = LEAF\n',
            id="path",
        ),
    ],
)
def test_git_submodules_cannot_write_outside_the_checkout(tmp_path: Path, gitmodules: str) -> None:
    bare = _repository_with_gitmodules(tmp_path, gitmodules)
    watched = tmp_path / "watched"
    watched.mkdir()
    home = Path(os.environ["MLPROJ_HOME"])
    try:
        fetched = fetch_project(bare.as_uri())
    except ExecutionException as exc:
        assert "submodule" in str(exc).lower()
        assert "\n" not in str(exc)
    else:
        # Accepted: the submodule landed inside the checkout, nowhere else.
        assert fetched.directory.is_relative_to(home)
        assert (fetched.directory / "vendor" / "x.txt").is_file()
    assert not (tmp_path / "outside").exists()
    assert not (home.parent / "outside").exists()
    assert not (tmp_path / "evil").exists()
    assert list(watched.iterdir()) == []
