"""Help that reads whole: every command and sub-command has a one-line summary that fits its
group's listing (no "..."), and an example in its own --help."""

from __future__ import annotations

import re

import click

from mlproj.cli.main import cli
from tests.cli.cli_support import run_cli


def _all_commands() -> list[tuple[str, ...]]:
    """Every command path, groups included, from the real command tree (lazy groups too)."""
    found: list[tuple[str, ...]] = []

    def walk(group: click.Group, path: tuple[str, ...]) -> None:
        ctx = click.Context(group, info_name=path[-1] if path else "mlproj")
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            found.append((*path, name))
            if isinstance(command, click.Group):
                walk(command, (*path, name))

    walk(cli, ())
    return found


def _listing(help_text: str) -> dict[str, str]:
    """The "Commands:" section of a group's --help: name -> summary (one line each)."""
    section = help_text.split("Commands:\n", 1)[1]
    rows: dict[str, str] = {}
    last = None
    for line in section.splitlines():
        match = re.match(r"^  (\S+)\s+(.*)$", line)
        if match:
            last = match.group(1)
            rows[last] = match.group(2)
        elif line.strip() and last is not None:
            rows[last] += " <wrapped> " + line.strip()  # a summary that did not fit one line
    return rows


def test_every_summary_fits_one_line_of_its_group_listing() -> None:
    commands = _all_commands()
    groups = [()] + [path for path in commands if any(c[:-1] == path for c in commands)]
    assert ("runs",) in groups and ("runs", "show") in commands
    for group in groups:
        done = run_cli(*group, "--help", COLUMNS="80")
        assert done.returncode == 0, done.stderr
        rows = _listing(done.stdout)
        children = {c[-1] for c in commands if c[:-1] == group}
        assert set(rows) == children, (group, rows)
        for name, summary in rows.items():
            where = " ".join(("mlproj", *group, name))
            assert not summary.endswith("..."), f"{where}: summary cut off: {summary!r}"
            assert "<wrapped>" not in summary, f"{where}: summary wraps: {summary!r}"
            assert len(summary) >= 10, f"{where}: no summary"


def test_every_command_shows_an_example() -> None:
    for path in [(), *_all_commands()]:
        done = run_cli(*path, "--help", COLUMNS="80")
        assert done.returncode == 0, done.stderr
        examples = re.split(r"^ *Examples?:\n", done.stdout, maxsplit=1, flags=re.M)
        where = " ".join(("mlproj", *path))
        assert len(examples) == 2, f"{where} --help has no example"
        first = examples[1].splitlines()[0].strip()
        assert first.startswith(where.split()[0] + " "), (where, first)
        if path:
            assert first.startswith(" ".join(("mlproj", *path))), (where, first)


def test_every_option_says_what_it_does() -> None:
    missing = []
    for path in _all_commands():
        command: click.Command | None = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.get_command(click.Context(command), name)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"mlproj {' '.join(path)} {param.opts[-1]}")
    assert missing == []
