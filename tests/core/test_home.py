"""mlproj's home folder: MLPROJ_HOME, else the per-user cache folder platformdirs would give."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.home import home_subdir, mlproj_home


def test_mlproj_home_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLPROJ_HOME", str(tmp_path / "h"))
    assert mlproj_home() == tmp_path / "h"
    assert home_subdir("envs").is_dir()


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG rules are Linux's")
def test_default_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLPROJ_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mlproj_home() == tmp_path / "mlproj"
    monkeypatch.setenv("XDG_CACHE_HOME", "  ")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert mlproj_home() == tmp_path / "user" / ".cache" / "mlproj"


def test_same_folder_as_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Earlier versions used platformdirs (still installed: virtualenv needs it); their caches
    # must still be found.
    import platformdirs

    monkeypatch.delenv("MLPROJ_HOME", raising=False)
    for xdg in (str(tmp_path / "xdg"), None):
        if xdg is None:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        assert mlproj_home() == Path(platformdirs.user_cache_dir("mlproj", appauthor=False))


def test_unwritable_home_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLPROJ_HOME", str(blocker))
    with pytest.raises(ExecutionException, match="point MLPROJ_HOME to a writable folder"):
        home_subdir("envs")
