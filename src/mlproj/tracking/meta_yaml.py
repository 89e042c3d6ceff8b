"""The ``meta.yaml`` codec of MLflow's file store: experiment and run records.

A small parser and writer for the flat ``key: scalar`` form every MLflow writes (the hot path
of listing runs), PyYAML only for anything unusual (hand-edited, legacy, folded values); both
give the values ``yaml.safe_load`` would. Plus the typed readers a store needs for the decoded
values (MLflow 1.x wrote strings where 2.x writes ints).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from mlproj.statuses import INT_TO_STATUS, STATUS_TO_INT, RunStatus

__all__ = ["as_int", "as_str", "dump_meta", "parse_meta", "select_fields", "status_name"]

_PLAIN = re.compile(r"[A-Za-z/_][A-Za-z0-9_./@+\-:]*")
_SINGLE_QUOTED = re.compile(r"'(?:[^']|'')*'")
_PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
# Words YAML 1.1 reads as booleans or null: such strings must be quoted.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"})
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class _NotFlat(Exception):
    """The text is not in the flat ``key: scalar`` form; PyYAML has to read it."""


def _yaml_scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list) and not value:
        return "[]"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value[-1] != ":" and value.lower() not in _YAML_WORDS:
            return value
        if value.isprintable():
            return "'" + value.replace("'", "''") + "'"
    raise _NotFlat


def dump_meta(meta: Mapping[str, object]) -> bytes:
    """YAML with sorted keys, block style, as MLflow writes ``meta.yaml``."""
    try:
        text = "".join(f"{key}: {_yaml_scalar(meta[key])}\n" for key in sorted(meta))
    except _NotFlat:
        import yaml

        # Non-ASCII escaped: PyYAML writes some line-break characters raw and misreads them.
        text = yaml.safe_dump(dict(meta), default_flow_style=False)
    return text.encode("utf-8")


def _quoted_value(raw: str) -> str:
    if raw[0] == "'":
        if not _SINGLE_QUOTED.fullmatch(raw):
            raise _NotFlat
        return raw[1:-1].replace("''", "'")
    try:
        value = json.loads(raw)  # JSON strings are a subset of YAML double-quoted ones
    except ValueError:
        raise _NotFlat from None
    if not isinstance(value, str):
        raise _NotFlat
    return value


def _digit_led_string(raw: str) -> bool:
    """True for a digit-led plain scalar YAML reads as a string, such as an unquoted run id.

    YAML 1.1 makes a number or date of it only with a prefix (0x, 0b) or one of ``.:-_+ ``.
    """
    return (
        not raw.isdigit()
        and raw[:2] not in ("0x", "0b", "0o")
        and not any(c in raw for c in ".:-_+ ")
    )


def _flat_value(raw: str) -> object:
    raw = raw.strip(" ")
    if raw in _NULLS:
        return None
    first = raw[0]
    if first in "'\"":
        return _quoted_value(raw)
    if raw == "[]":
        return []
    if _PLAIN_INT.fullmatch(raw):
        return int(raw)
    if first.isdigit() and _digit_led_string(raw):
        return raw
    # Other numbers, booleans, dates and anything with YAML syntax: let PyYAML decide.
    if (
        first in "[]{}&*!|>%@`,?:-#+.0123456789"
        or raw.lower() in _YAML_WORDS
        or " #" in raw
        or ": " in raw
    ):
        raise _NotFlat
    return raw


_META_LINE = re.compile(r"^([A-Za-z_]\w*):(?: (.*))?$", re.MULTILINE)


def _flat_fields(text: str) -> dict[str, str] | None:
    """The raw ``key: scalar`` pairs of a flat meta.yaml, or None when it is not flat."""
    if "\r" in text:
        return None
    pairs = _META_LINE.findall(text)
    if len(pairs) != text.count("\n") + (not text.endswith("\n")):
        return None  # continuation lines, lists, comments, blank lines: not the flat form
    return dict(pairs)


def parse_meta(text: str) -> dict[str, object]:
    """Read a ``meta.yaml`` into the same values ``yaml.safe_load`` gives."""
    fields = _flat_fields(text)
    if fields is not None:
        try:
            return {key: _flat_value(raw) for key, raw in fields.items()}
        except _NotFlat:
            pass
    return _parse_meta_yaml(text)


def select_fields(text: str, keys: Sequence[str]) -> dict[str, object]:
    """Only ``keys`` of a meta.yaml: the fast path of :func:`parse_meta` for listings."""
    fields = _flat_fields(text)
    if fields is not None:
        try:
            return {key: _flat_value(fields[key]) for key in keys if key in fields}
        except _NotFlat:
            pass
    return _parse_meta_yaml(text)


def _parse_meta_yaml(text: str) -> dict[str, object]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ValueError("meta.yaml is not a mapping")
    return {str(k): v for k, v in data.items()}


def as_int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (str, float)):
        try:
            return int(value)
        except ValueError:
            try:
                return int(float(value))
            except ValueError:
                return None
    return None


def as_str(value: object, default: str = "") -> str:
    return default if value is None else str(value)


def status_name(value: object) -> str:
    code = as_int(value)
    if code is not None:
        return INT_TO_STATUS.get(code, RunStatus.RUNNING)
    if isinstance(value, str) and value.upper() in STATUS_TO_INT:
        return str(value.upper())
    return RunStatus.RUNNING  # MLflow's default when no status is recorded
