"""Command options declared once, as data, and a click-free parser for their plain use.

Importing click costs more than all the rest of a no-op run's start (about a quarter of it),
and ``mlproj run`` and ``mlproj sweep`` are the commands users, scripts and schedulers start
most. Their options are declared here as plain data: ``mlproj.cli.main`` builds the click
commands from them (help, completion, usage errors), and :meth:`OptionTable.parse` reads an
argument list that uses them plainly, giving the values click would give. Anything else
(``--help``, an unknown or malformed option, a missing value, a value click must judge)
returns None, and click then parses the whole command line itself, with its own messages.
Tests hold the two parsers to the same result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

# Option kinds: one value, a repeatable value, a flag, and an on/off pair (--wait/--no-wait).
VALUE, MULTIPLE, FLAG, SWITCH = "value", "multiple", "flag", "switch"


class UsageProblem(Exception):
    """Wrong command-line usage found after parsing (exit code 2, with the usage line): the
    click command reports it as click's usage error, and the fast path hands the command line
    to click, which then reports it in its usual form."""


class Option:
    """One option: its click declaration and what the fast parser needs."""

    __slots__ = (
        "choices",
        "default",
        "dest",
        "envvar",
        "flags",
        "help",
        "kind",
        "metavar",
        "number",
        "off_flags",
        "show_default",
    )

    def __init__(
        self,
        dest: str,
        flags: tuple[str, ...],
        help: str,
        *,
        kind: str = VALUE,
        default: Any = None,
        off_flags: tuple[str, ...] = (),
        envvar: str | None = None,
        metavar: str | None = None,
        show_default: bool = False,
        number: tuple[str, float, bool] | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> None:
        self.dest = dest
        self.flags = flags
        self.off_flags = off_flags
        self.kind = kind
        self.default = default
        self.help = help
        self.envvar = envvar
        self.metavar = metavar
        self.show_default = show_default
        # ("float" | "int", minimum, minimum excluded): click's FloatRange / IntRange; a
        # minimum of -inf is click's plain int / float.
        self.number = number
        self.choices = choices  # click.Choice, case-sensitive


class Parsed:
    """The values of a command's parameters, and which came from environment variables."""

    __slots__ = ("from_env", "values")

    def __init__(self, values: dict[str, Any], from_env: frozenset[str]) -> None:
        self.values = values
        self.from_env = from_env


class OptionTable:
    """A command's options and its positional ``uri`` (required or optional)."""

    def __init__(self, options: Sequence[Option], *, uri_required: bool) -> None:
        self.options = tuple(options)
        self.uri_required = uri_required
        self._by_flag: dict[str, tuple[Option, bool]] = {}
        for option in self.options:
            for flag in option.flags:
                self._by_flag[flag] = (option, True)
            for flag in option.off_flags:
                self._by_flag[flag] = (option, False)

    def parse(self, args: list[str], environ: Mapping[str, str] | None = None) -> Parsed | None:
        """The arguments (after the command's name) as click would read them, or None when
        click must read them itself."""
        read = self._read_command_line(args)
        if read is None:
            return None
        given, uris = read
        if len(uris) > 1 or (self.uri_required and not uris):
            return None
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {"uri": uris[0] if uris else None}
        from_env: set[str] = set()
        for option in self.options:
            if option.dest in given:
                values[option.dest] = given[option.dest]
            elif option.envvar is not None and option.envvar in environ:
                if not environ[option.envvar]:
                    return None  # click versions differ on empty variables: let click decide
                values[option.dest] = environ[option.envvar]
                from_env.add(option.dest)
            else:
                values[option.dest] = () if option.kind == MULTIPLE else option.default
        return Parsed(values, frozenset(from_env))

    def _read_command_line(self, args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
        """The options given and the positional words, or None for anything out of the plain."""
        given: dict[str, Any] = {}
        words: list[str] = []
        index = 0
        while index < len(args):
            word = args[index]
            index += 1
            if not word.startswith("-"):
                words.append(word)
                continue
            long = word.startswith("--")
            name, equals, attached = word.partition("=") if long else (word, "", "")
            # Unknown here: --help, --, "-" (stdin), combined or attached short options, a typo.
            found = self._by_flag.get(name)
            if found is None:
                return None
            option, on = found
            if option.kind in (FLAG, SWITCH):
                if equals:
                    return None
                given[option.dest] = on
                continue
            if equals:
                value = attached
            elif index < len(args) and not args[index].startswith("-"):
                value = args[index]
                index += 1
            else:
                return None  # missing, or a value click must judge (it may be an option)
            converted = _converted(option, value)
            if converted is _DECLINE:
                return None
            if option.kind == MULTIPLE:
                given[option.dest] = (*given.get(option.dest, ()), converted)
            else:
                given[option.dest] = converted
        return given, words


_DECLINE: Any = object()


def _converted(option: Option, value: str) -> Any:
    """The value as click would pass it on, or ``_DECLINE`` when click must judge it."""
    if option.number is not None:
        number = _number(option.number, value)
        return _DECLINE if number is None else number
    if option.choices is not None and value not in option.choices:
        return _DECLINE  # click's message lists the choices
    return value


def _number(rule: tuple[str, float, bool], text: str) -> float | int | None:
    kind, minimum, minimum_excluded = rule
    try:
        number: float | int = int(text) if kind == "int" else float(text)
    except ValueError:
        return None
    if math.isnan(number) or number < minimum or (minimum_excluded and number == minimum):
        return None  # NaN, or out of range: click's message says which
    return number
