"""Parameter types: which names exist, and the value rules of each.

MLflow gives behaviour to ``path`` and ``uri`` only and passes every other type name through,
so a type name mlproj does not know (``list[int]``, or ``data/file.csv`` from the
``data: data/file.csv`` shorthand) is kept as written and its values are plain text. Known
numeric and boolean types are validated, but a value reaches the command (and the tracking
store) as the text MLflow would pass: ``50`` stays ``50`` for a ``float``, ``1e-3`` stays
``1e-3``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from mlproj.records import record
from mlproj.redaction import mask_userinfo

KNOWN_TYPES: tuple[str, ...] = ("string", "float", "int", "path", "uri", "bool")
# Spellings seen in real MLproject files, read as the type they name.
TYPE_ALIASES: Mapping[str, str] = {
    "str": "string",
    "integer": "int",
    "boolean": "bool",
    "double": "float",
}
BOOL_TRUE = frozenset({"true", "yes", "1", "on"})
BOOL_FALSE = frozenset({"false", "no", "0", "off"})
NUMERIC_TYPES = frozenset({"float", "int"})


@record(frozen=True)
class Parameter:
    name: str
    # One of KNOWN_TYPES, or an unknown type name kept as written (its values are text).
    type: str = "string"
    default: Any = None  # None means required
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    help: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def known_type(self) -> bool:
        return self.type in KNOWN_TYPES


def canonical_type(name: str) -> str | None:
    """``float`` for ``Float`` / ``double``; None for a name with no behaviour of its own."""
    lowered = name.strip().lower()
    lowered = TYPE_ALIASES.get(lowered, lowered)
    return lowered if lowered in KNOWN_TYPES else None


class InvalidValue(ValueError):
    """A value does not fit its parameter; ``problem`` reads e.g. ``expected float, got 'x'``."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def show_value(value: object, limit: int = 200) -> str:
    """repr() for messages: credentials in URLs hidden, long values cut."""
    text = mask_userinfo(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_number(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number)


def has_scheme(text: str) -> bool:
    """True for ``s3://b/k``, ``file:///x``; False for ``/x``, ``x`` and ``C:\\x``."""
    try:
        return len(urlparse(text).scheme) >= 2
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False


def as_float(value: object) -> float:
    if isinstance(value, bool):
        raise InvalidValue(f"expected float, got {show_value(value)}")
    try:
        if isinstance(value, int | float | str):
            return float(value)
    except (ValueError, OverflowError):
        pass
    raise InvalidValue(f"expected float, got {show_value(value)}")


def as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise InvalidValue(f"expected int, got {show_value(value)}")


def _check_bool(value: object) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int | str) and str(value).strip().lower() in BOOL_TRUE | BOOL_FALSE:
        return
    raise InvalidValue(f"expected bool (true/false, yes/no, 1/0, on/off), got {show_value(value)}")


def typed_text(param_type: str, value: object) -> str:
    """The value as MLflow passes it to the command (``str(value)``), after checking that it
    fits the type; raises InvalidValue."""
    if param_type == "float":
        as_float(value)
    elif param_type == "int":
        as_int(value)
    elif param_type == "bool":
        _check_bool(value)
    elif param_type in ("path", "uri"):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        # Scalars only (YAML may give numbers or dates for a folder name); str() as MLflow does.
        if isinstance(value, bool | list | tuple | dict | set) or value is None or value == "":
            raise InvalidValue(f"expected a {param_type}, got {show_value(value)}")
        if param_type == "uri" and not has_scheme(str(value)):
            raise InvalidValue(
                f"expected a URI with a scheme (such as s3://, https://, file:///), "
                f"got {show_value(str(value))}"
            )
    return str(value)


def in_python_form(param_type: str, text: str) -> bool:
    """Whether a script that parses the value with the type's Python constructor and logs it
    logs ``text`` itself: not for ``float('50')`` (``50.0``) or ``int('010')`` (``10``), nor
    for ``20.0`` given from Python for an ``int``. Other types: always."""
    try:
        if param_type == "float":
            return str(as_float(text)) == text
        if param_type == "int":
            return str(as_int(text)) == text
    except InvalidValue:
        return False
    return True


def _comparable(param_type: str, text: str) -> object:
    """What two values of this type are compared by (0.10 equals 0.1, YES equals true)."""
    if param_type == "float":
        return float(text)
    if param_type == "int":
        return int(text)
    if param_type == "bool":
        return text.strip().lower() in BOOL_TRUE
    return text


def check_value(param: Parameter, value: object) -> str:
    """Validate ``value`` against the parameter's type, choices and bounds; return its text.

    Path values are only checked to be non-empty text here; where they point is resolved by
    :func:`mlproj.spec.params.resolve_parameters`.
    """
    text = typed_text(param.type, value)
    if param.choices is not None:
        wanted = _comparable(param.type, text)
        allowed = [_comparable(param.type, typed_text(param.type, c)) for c in param.choices]
        if wanted not in allowed:
            listed = ", ".join(show_value(c) for c in param.choices)
            raise InvalidValue(f"expected one of {listed}, got {show_value(value)}")
    if param.min is not None or param.max is not None:
        number = as_float(text)
        if math.isnan(number):
            raise InvalidValue("got nan, which cannot be compared with min/max")
        if param.min is not None and number < param.min:
            raise InvalidValue(
                f"expected a value >= {show_number(param.min)}, got {show_value(value)}"
            )
        if param.max is not None and number > param.max:
            raise InvalidValue(
                f"expected a value <= {show_number(param.max)}, got {show_value(value)}"
            )
    return text
