from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Tmux


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    """A real terminal (tmux from Debian's packages) with a plain bash in it."""
    terminal = Tmux(tmp_path / "tmux.sock")
    try:
        yield terminal
    finally:
        terminal.close()
