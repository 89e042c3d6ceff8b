"""Plain data classes for the modules every ``mlproj run`` imports, without ``dataclasses``.

``import dataclasses`` pulls in ``inspect`` (with ``ast``, ``dis`` and ``tokenize``), and each
``@dataclass`` compiles five or six methods when its module is imported: together a third of
a no-op run's start. A :func:`record` class behaves like a dataclass for what mlproj uses
(positional or keyword construction, defaults and ``field(default_factory=...)``, ``frozen``,
``==``, ``hash`` of a frozen record, ``repr``, :func:`replace`, :func:`asdict`), but only its
``__init__`` is compiled, and only when the class is first instantiated. Type checkers see a
dataclass (PEP 681). Modules off the hot path keep using ``dataclasses``.

Compiling those ``__init__`` methods (about 25 in a ``mlproj run`` or ``sweep``) took 2 ms of
every start, so their bytecode is cached where Python caches this module's own
(``__pycache__``, or ``PYTHONPYCACHEPREFIX``), under the same rules: not written with
``PYTHONDONTWRITEBYTECODE``, and keyed by the generated source, so a changed class never finds
a stale entry.
"""

from __future__ import annotations

import atexit
import contextlib
import marshal
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda function: function


T = TypeVar("T")
_MISSING: Any = object()


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any, default_factory: Any) -> None:
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] = _MISSING) -> Any:
    """A field's default (``default_factory`` for a fresh list or dict per instance)."""
    return _Field(default, default_factory)


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(*, frozen: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record of its annotated fields (``ClassVar`` ones left out)."""

    def wrap(cls: type[T]) -> type[T]:
        return _make(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _make(cls: type[T], frozen: bool) -> type[T]:
    fields: list[tuple[str, Any, Any]] = []  # (name, default, default_factory)
    # The class's own annotations (strings under `from __future__ import annotations`); not
    # inspect.get_annotations, whose import is what this module avoids.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if "ClassVar" in str(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            fields.append((name, value.default, value.default_factory))
            if value.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value.default)
        else:
            fields.append((name, value, _MISSING))
    names = tuple(name for name, _, _ in fields)
    attrs: dict[str, Any] = {
        "__record_fields__": tuple(fields),
        "__match_args__": names,
        "__init__": _lazy_init,
        "__repr__": _repr,
        "__eq__": _eq,
    }
    if frozen:
        attrs.update(__setattr__=_refuse_set, __delattr__=_refuse_delete, __hash__=_hash)
    else:
        attrs["__hash__"] = None  # mutable and compared by value: unhashable, as dataclasses
    for name, value in attrs.items():
        if name == "__init__" or name not in cls.__dict__:
            setattr(cls, name, value)
    cls.__record_frozen__ = frozen  # type: ignore[attr-defined]
    return cls


def _lazy_init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    owner = next(c for c in cls.__mro__ if "__record_fields__" in c.__dict__)
    init = _compile_init(owner)
    owner.__init__ = init  # type: ignore[misc]
    init(self, *args, **kwargs)


def _compile_init(cls: type) -> Callable[..., None]:
    """The class's own ``__init__``, as fast as a dataclass's (compiled once, on first use)."""
    fields: tuple[tuple[str, Any, Any], ...] = cls.__dict__["__record_fields__"]
    frozen: bool = cls.__dict__["__record_frozen__"]
    namespace: dict[str, Any] = {"_MISSING": _MISSING, "_object_setattr": object.__setattr__}
    parameters, body = [], []
    for index, (name, default, factory) in enumerate(fields):
        if factory is not _MISSING:
            namespace[f"_factory_{index}"] = factory
            parameters.append(f"{name}=_MISSING")
            value = f"_factory_{index}() if {name} is _MISSING else {name}"
        elif default is not _MISSING:
            namespace[f"_default_{index}"] = default
            parameters.append(f"{name}=_default_{index}")
            value = name
        else:
            parameters.append(name)
            value = name
        body.append(
            f"    _object_setattr(self, {name!r}, {value})"
            if frozen
            else f"    self.{name} = {value}"
        )
    source = f"def __init__(self, {', '.join(parameters)}):\n" + ("\n".join(body) or "    pass")
    exec(_init_code(source), namespace)  # noqa: S102 - our own generated code, as dataclasses does
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


# source -> its compiled code: the cache file's entries, then those compiled by this process.
_codes: dict[str, CodeType] | None = None
_compiled = 0  # compiled by this process (the rest came from the cache file)


def _init_code(source: str) -> CodeType:
    global _codes, _compiled  # noqa: PLW0603 - one cache per process
    if _codes is None:
        _codes = _load_codes()
    code = _codes.get(source)
    if code is None:
        code = _codes[source] = compile(source, "<record __init__>", "exec")
        _compiled += 1
        if _compiled == 1:
            atexit.register(_save_codes)
    return code


def _cache_file() -> Path | None:
    cached = globals().get("__cached__")  # this module's .pyc path, wherever Python keeps it
    if not cached:
        return None
    tag = sys.implementation.cache_tag  # marshal's format is the interpreter's own
    return Path(cached).with_name(f"records-inits.{tag}.marshal")


def _load_codes() -> dict[str, CodeType]:
    path = _cache_file()
    if path is None:
        return {}
    try:
        loaded = marshal.loads(path.read_bytes())  # noqa: S302 - written by _save_codes, as a .pyc
    except (OSError, EOFError, ValueError, TypeError):
        return {}  # none yet, unreadable or damaged: compile, and write it anew
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, CodeType)}


_MAX_CACHED = 500  # entries of other mlproj versions pile up; past this, keep this process's


def _save_codes() -> None:
    path = _cache_file()
    if path is None or sys.dont_write_bytecode or not _codes:
        return
    merged = {**_load_codes(), **_codes}
    if len(merged) > _MAX_CACHED:
        merged = dict(_codes)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(marshal.dumps(merged))
        temporary.replace(path)  # readers see the old file or the new one
    except OSError:  # a read-only install: compile on every start, as before
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name, _, _ in obj.__record_fields__)


def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in self.__record_fields__)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        result: bool = NotImplemented  # the other side may know how to compare
        return result
    return bool(_values(self) == _values(other))


def _hash(self: Any) -> int:
    return hash(_values(self))


def _refuse_set(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


def _refuse_delete(self: Any, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of frozen {type(self).__name__}")


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with some fields changed (``dataclasses.replace``)."""
    fields = obj.__record_fields__  # type: ignore[attr-defined]
    values = {name: changes.pop(name) if name in changes else getattr(obj, name)
              for name, _, _ in fields}  # fmt: skip
    if changes:
        raise TypeError(f"{type(obj).__name__} has no field {next(iter(changes))!r}")
    return type(obj)(**values)


def field_names(cls: type) -> tuple[str, ...]:
    """The names of a record class's fields, in order (``dataclasses.fields``)."""
    return tuple(name for name, _, _ in cls.__record_fields__)  # type: ignore[attr-defined]


def asdict(obj: Any) -> dict[str, Any]:
    """The fields as a dict; nested records, lists and dicts copied (``dataclasses.asdict``)."""
    return {name: _copy(getattr(obj, name)) for name, _, _ in obj.__record_fields__}


def _copy(value: Any) -> Any:
    if hasattr(type(value), "__record_fields__"):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value
