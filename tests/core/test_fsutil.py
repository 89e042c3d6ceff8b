"""The file primitives (mlproj.fsutil): atomic replace, JSON, create-once, append, lock, sizes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlproj import fsutil
from mlproj.fsutil import (
    append_bytes,
    create_once,
    exclusive_lock,
    folder_size,
    write_atomic,
    write_json_atomic,
)


def test_write_atomic_replaces_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "meta.yaml"
    write_atomic(target, b"one")
    write_atomic(target, b"two", tmp_dir=tmp_path)
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.yaml"]
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.yaml"]


def test_create_once_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "alpha"
    assert create_once(target, b"0.1") is True
    assert create_once(target, b"0.2") is False
    assert target.read_bytes() == b"0.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha"]


def test_create_once_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some mounts (SMB, some FUSE) refuse link(); no such file system can be mounted in this
    sandbox, so os.link is replaced by one that fails the way they do."""

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fsutil.os, "link", no_link)
    target = tmp_path / "alpha"
    assert create_once(target, b"0.1") is True
    assert create_once(target, b"0.2") is False
    assert target.read_bytes() == b"0.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha"]


def test_appends_and_lock_across_processes(tmp_path: Path) -> None:
    """Four processes append lines and increment a counter under the lock at the same time."""
    worker = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from mlproj.fsutil import append_bytes, exclusive_lock
        folder, index = Path(sys.argv[1]), sys.argv[2]
        for n in range(200):
            append_bytes(folder / "metric", f"{index} {n} {'x' * 50}\\n".encode())
            with exclusive_lock(folder / ".lock"):
                counter = folder / "counter"
                value = int(counter.read_text()) if counter.exists() else 0
                counter.write_text(str(value + 1))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", worker, str(tmp_path), str(i)]) for i in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    lines = (tmp_path / "metric").read_text().splitlines()
    assert sorted(lines) == sorted(f"{i} {n} {'x' * 50}" for i in range(4) for n in range(200))
    assert (tmp_path / "counter").read_text() == "800"  # no increment lost
    append_bytes(tmp_path / "metric", b"")
    assert os.path.getsize(tmp_path / "metric") == sum(len(line) + 1 for line in lines)
    with exclusive_lock(tmp_path / ".lock"):
        assert (tmp_path / ".lock").exists()


def test_write_json_atomic_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "cache.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    write_json_atomic(target, {"path": tmp_path}, indent=None)
    assert json.loads(target.read_text()) == {"path": str(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]


def test_folder_size_counts_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "dirlink").symlink_to(tmp_path / "sub")
    assert folder_size(tmp_path) == 15
    assert folder_size(tmp_path / "missing") == 0
