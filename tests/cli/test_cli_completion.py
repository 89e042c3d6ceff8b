"""Shell completion for bash, zsh and fish: commands, options, entry points, run ids.

The protocol tests call ``mlproj`` as each shell's completion script does (click's
``_MLPROJ_COMPLETE`` with ``COMP_WORDS`` / ``COMP_CWORD``); the last test types TAB into a
real bash under tmux."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from cli_support import EXAMPLE, Tmux, run_cli

from mlproj.tracking import get_store


def _complete(shell: str, words: str, **env: str) -> list[tuple[str, str]]:
    """(value, help) pairs that ``mlproj`` offers for the last word of ``words``."""
    current = "" if words.endswith(" ") else words.rsplit(maxsplit=1)[-1]
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    done = run_cli(
        _MLPROJ_COMPLETE=f"{shell}_complete",
        COMP_WORDS=words,
        COMP_CWORD=current if shell == "fish" else cword,
        **env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing may land in the user's command line
    out = done.stdout
    if shell == "bash":
        return [(line.split(",", 1)[1], "") for line in out.splitlines() if line]
    if shell == "zsh":
        lines = out.splitlines()
        return [(lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)]
    pairs = []
    for line in filter(None, out.splitlines()):  # fish gets an empty line for "nothing"
        value, _, help_ = line.split(",", 1)[1].partition("\t")
        pairs.append((value, help_))
    return pairs


def _values(shell: str, words: str, **env: str) -> list[str]:
    return [value for value, _ in _complete(shell, words, **env)]


def _finished_run() -> str:
    done = run_cli("run", str(EXAMPLE), "--env-manager", "local", "-q")
    assert done.returncode == 0, done.stderr
    store = get_store()
    (run,) = store.search_runs([e.experiment_id for e in store.list_experiments()])
    return run.run_id


SHELLS = ["bash", "zsh", "fish"]


@pytest.mark.parametrize("shell", SHELLS)
def test_commands_and_options(shell: str) -> None:
    assert _values(shell, "mlproj ru") == ["run", "runs"]
    assert set(_values(shell, "mlproj runs ")) >= {"cancel", "list", "logs", "reap", "show"}
    options = _values(shell, "mlproj run . --e")
    assert {"--entry-point", "--env-manager", "--experiment-name", "--experiment-id"} <= set(
        options
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_entry_points_of_the_project_given(shell: str) -> None:
    assert _values(shell, f"mlproj run {EXAMPLE} -e ") == ["main", "fail", "sleep", "train.py"]
    assert _values(shell, f"mlproj run {EXAMPLE} -P alpha=1 --entry-point s") == ["sleep"]
    assert _values(shell, "mlproj run https://example.invalid/repo.git -e ") == []


@pytest.mark.parametrize("shell", SHELLS)
def test_run_ids_from_the_store(shell: str) -> None:
    run_id = _finished_run()
    offered = _complete(shell, "mlproj runs show ")
    assert [value for value, _ in offered] == [run_id]
    if shell != "bash":  # bash shows no descriptions
        assert offered[0][1].endswith(" FINISHED")
    assert _values(shell, f"mlproj runs logs {run_id[:3]}") == [run_id]
    assert _values(shell, "mlproj runs cancel zz") == []


def test_an_unreachable_store_completes_nothing_quietly() -> None:
    assert _values("bash", "mlproj runs show ", MLFLOW_TRACKING_URI="http://127.0.0.1:1") == []


def test_tab_in_a_real_bash(tmux: Tmux, tmp_path: Path) -> None:
    run_id = _finished_run()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "mlproj"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m mlproj "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    tmux.type_line(f"export PATH={bindir}:{os.environ['PATH']} PS1='$ '")
    tmux.type_line('eval "$(_MLPROJ_COMPLETE=bash_source mlproj)"; clear')
    tmux.wait_for(lambda screen: screen.strip() in ("$", ""))

    tmux.send("-l", "mlproj runs sh")
    tmux.send("Tab")
    # capture-pane drops trailing blanks; the next TAB shows that "show " was completed whole.
    tmux.wait_for(lambda screen: "$ mlproj runs show" in screen.splitlines())
    tmux.send("Tab")
    tmux.wait_for(lambda screen: f"$ mlproj runs show {run_id}" in screen)
    tmux.send("C-u")

    tmux.send("-l", f"mlproj run {EXAMPLE} -e ")
    tmux.send("Tab", "Tab")
    screen = tmux.wait_for(lambda screen: "train.py" in screen)
    # bash lists the choices under the command line, then draws the command line again.
    listed = {
        word for line in screen.splitlines() if not line.startswith("$") for word in line.split()
    }
    assert listed == {"main", "fail", "sleep", "train.py"}
    assert screen.strip().splitlines()[-1] == f"$ mlproj run {EXAMPLE} -e"
