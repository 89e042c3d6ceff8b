"""Shell completion for bash, zsh and fish: commands, options, entry points, run ids.

The protocol tests call ``mlproj`` as each shell's completion script does (click's
``_MLPROJ_COMPLETE`` with ``COMP_WORDS`` / ``COMP_CWORD``). Then the real shells, each with the
script docs/completion.md says to load: TAB typed into bash and zsh under tmux, and fish's own
``complete -C`` (what fish lists on TAB). zsh and fish come from Debian's packages (.ci/run)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.tracking import get_store
from tests.cli.cli_support import EXAMPLE, Tmux, run_cli


def _complete(shell: str, words: str, **env: str) -> list[tuple[str, str]]:
    """(value, help) pairs that ``mlproj`` offers for the last word of ``words``."""
    current = "" if words.endswith(" ") else words.rsplit(maxsplit=1)[-1]
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    # mypy cannot tell that **env holds variable names only, never run_cli's cwd or timeout.
    done = run_cli(
        _MLPROJ_COMPLETE=f"{shell}_complete",
        COMP_WORDS=words,
        COMP_CWORD=current if shell == "fish" else cword,
        **env,  # type: ignore[arg-type]
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


RUN_ID_WORDS = [
    "mlproj runs show ",
    "mlproj runs list --parent ",
    "mlproj sweep --resume ",
    "mlproj pipeline resume ",
    f"mlproj run {EXAMPLE} --run-id ",
]


@pytest.mark.parametrize("shell", SHELLS)
def test_every_run_id_the_cli_reads_completes(shell: str) -> None:
    run_id = _finished_run()
    for words in RUN_ID_WORDS:
        assert _values(shell, words) == [run_id], words
        assert _values(shell, words + run_id[:4]) == [run_id], words


def test_an_unreachable_store_completes_nothing_quietly() -> None:
    assert _values("bash", "mlproj runs show ", MLFLOW_TRACKING_URI="http://127.0.0.1:1") == []


def _mlproj_on_path(tmp_path: Path) -> str:
    """A PATH whose ``mlproj`` is this checkout's (a console script may be another's)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "mlproj"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m mlproj "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return f"{bindir}:{os.environ['PATH']}"


def test_tab_in_a_real_bash(tmux: Tmux, tmp_path: Path) -> None:
    run_id = _finished_run()
    tmux.type_line(f"export PATH={_mlproj_on_path(tmp_path)} PS1='$ '")
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


ZSH, FISH = shutil.which("zsh"), shutil.which("fish")


@pytest.mark.skipif(ZSH is None, reason="zsh is installed by .ci/run (apt)")
def test_tab_in_a_real_zsh(tmux: Tmux, tmp_path: Path) -> None:
    run_id = _finished_run()
    tmux.type_line(f"PATH={_mlproj_on_path(tmp_path)} exec {ZSH} -f")  # -f: no user rc files
    tmux.type_line("PS1='$ '; autoload -Uz compinit && compinit -u")
    tmux.type_line('eval "$(_MLPROJ_COMPLETE=zsh_source mlproj)"; clear')
    tmux.wait_for(lambda screen: screen.strip() in ("$", ""))

    tmux.send("-l", "mlproj runs sh")
    tmux.send("Tab")
    tmux.wait_for(lambda screen: "$ mlproj runs show" in screen.splitlines())
    tmux.send("Tab")  # the only run: its id is completed whole
    tmux.wait_for(lambda screen: f"$ mlproj runs show {run_id}" in screen)
    tmux.send("C-u")
    tmux.type_line("clear")
    tmux.wait_for(lambda screen: screen.strip() in ("$", ""))

    tmux.send("-l", f"mlproj run {EXAMPLE} -e ")
    tmux.send("Tab")
    screen = tmux.wait_for(lambda screen: "train.py" in screen)
    # zsh lists each choice with its description (the entry point's command) under the line.
    listed = {line.split()[0]: line for line in screen.splitlines()[1:] if line.strip()}
    assert set(listed) == {"main", "fail", "sleep", "train.py"}, screen
    assert listed["sleep"].split(" -- ", 1)[1].strip() == "sleep {seconds}"
    assert listed["train.py"].split(" -- ", 1)[1].strip() == "script"


def _fish_offers(line: str, tmp_path: Path) -> list[tuple[str, str]]:
    """What a real fish lists on TAB after ``line``, with the script docs/completion.md gives."""
    assert FISH is not None
    script = f"_MLPROJ_COMPLETE=fish_source mlproj | source; complete -C {line!r}"
    done = subprocess.run(
        [FISH, "--no-config", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": _mlproj_on_path(tmp_path)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [(row.partition("\t")[0], row.partition("\t")[2]) for row in done.stdout.splitlines()]


@pytest.mark.skipif(FISH is None, reason="fish is installed by .ci/run (apt)")
def test_a_real_fish_completes(tmp_path: Path) -> None:
    run_id = _finished_run()
    assert _fish_offers("mlproj ru", tmp_path) == [
        ("run", "Run a project: a folder, Git repository or archive."),
        ("runs", "List, inspect, follow, cancel and reap runs."),
    ]
    # Whole help, commas and all (click's own fish script cut it at the first comma).
    assert ("--env-manager", "local, uv, virtualenv or conda (default: from the project).") in (
        _fish_offers("mlproj run . --env-m", tmp_path)
    )
    offered = _fish_offers(f"mlproj run {EXAMPLE} -e ", tmp_path)
    assert [value for value, _ in offered] == ["fail", "main", "sleep", "train.py"]  # fish sorts
    assert dict(offered)["sleep"] == "sleep {seconds}"
    (shown,) = _fish_offers("mlproj runs logs ", tmp_path)
    assert shown[0] == run_id and shown[1].endswith(" FINISHED")
