"""mlproj.records behaves like dataclasses for everything mlproj uses of them."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import pytest

from mlproj.records import asdict, field, record, replace

T = TypeVar("T")


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "point"


@dataclasses.dataclass(frozen=True)
class PointDataclass:
    x: int
    y: int = 0
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@record
class Box(Generic[T]):
    content: T
    items: list[Point] = field(default_factory=list)


def test_construction_defaults_and_factories() -> None:
    a, b = Point(1), Point(x=2, y=3, tags={"k": "v"})
    assert (a.x, a.y, a.tags) == (1, 0, {})
    assert (b.x, b.y, b.tags) == (2, 3, {"k": "v"})
    assert Point(1).tags is not Point(1).tags  # a fresh dict each time
    assert Point.kind == "point" and "kind" not in asdict(a)
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_same_repr_equality_and_hash_as_a_dataclass() -> None:
    ours, theirs = Point(1, 2, {"a": "b"}), PointDataclass(1, 2, {"a": "b"})
    assert repr(ours).replace("Point", "X") == repr(theirs).replace("PointDataclass", "X")
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != PointDataclass(1, 2)  # type: ignore[comparison-overlap]
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ()))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hash(Box(1))  # mutable records are unhashable, as mutable dataclasses


def test_frozen_records_refuse_changes_and_replace_copies() -> None:
    point = Point(1)
    with pytest.raises(AttributeError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.x
    moved = replace(point, y=5)
    assert (moved.x, moved.y, point.y) == (1, 5, 0)
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(point, z=1)
    box = Box("c")
    box.content = "d"  # a mutable record is mutable
    assert box.content == "d"


def test_asdict_copies_nested_records_and_containers() -> None:
    box = Box("c", [Point(1, tags={"k": "v"})])
    data = asdict(box)
    assert data == {"content": "c", "items": [{"x": 1, "y": 0, "tags": {"k": "v"}}]}
    data["items"][0]["tags"]["k"] = "changed"
    assert box.items[0].tags == {"k": "v"}


def test_records_pickle() -> None:
    point = Point(1, 2, {"a": "b"})
    assert pickle.loads(pickle.dumps(point)) == point


def test_a_plain_run_or_sweep_imports_neither_dataclasses_nor_inspect(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "import mlproj.api, mlproj.tracking.file_store, mlproj.local_run.supervisor\n"
        "import mlproj.cli.entry, mlproj.cli.run_exec, mlproj.cli.sweep\n"
        "import mlproj.orchestration.sweeps, mlproj.tracking.sqlite_store\n"
        "print(sorted({'dataclasses', 'inspect', 'click'} & set(sys.modules)))\n"
    )
    # Without coverage's child measurement (CI's coverage pass), which imports inspect itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "[]"


_CACHE_SCRIPT = """
from mlproj import records
from mlproj.records import field, record

@record(frozen=True)
class Frozen:
    a: int
    b: str = "b"
    c: list = field(default_factory=list)

@record
class Plain:
    x: int
    {extra}

f, p = Frozen(1), Plain(2)
print(records._compiled, f.a, f.b, f.c, p.x, Frozen(3, c=[1]).c, records._cache_file())
"""


def _cached_run(prefix: object, extra: str = "", **env: str) -> list[str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    variables.pop("PYTHONDONTWRITEBYTECODE", None)
    variables.update(PYTHONPYCACHEPREFIX=str(prefix), **env)
    done = subprocess.run(
        [sys.executable, "-c", _CACHE_SCRIPT.format(extra=extra)],
        capture_output=True, text=True, check=True, env=variables,
    )  # fmt: skip
    return done.stdout.split(" ", 6)


def test_compiled_inits_are_cached_beside_the_bytecode_and_reused(tmp_path: Path) -> None:
    """The first process compiles each record's __init__ and writes them where Python caches
    bytecode; the next one compiles none, with the same behaviour; a changed class compiles
    only itself; a damaged file is compiled over; PYTHONDONTWRITEBYTECODE writes nothing."""
    first = _cached_run(tmp_path / "pyc")
    assert first[:6] == ["2", "1", "b", "[]", "2", "[1]"]
    cache = Path(first[6].strip())
    assert cache.is_file() and cache.is_relative_to(tmp_path / "pyc")
    assert _cached_run(tmp_path / "pyc")[:6] == ["0", "1", "b", "[]", "2", "[1]"]
    changed = _cached_run(tmp_path / "pyc", extra="y: int = 5")
    assert changed[0] == "1"  # Plain changed; Frozen's entry still matches
    cache.write_bytes(b"not marshal data")
    assert _cached_run(tmp_path / "pyc")[:6] == ["2", "1", "b", "[]", "2", "[1]"]
    assert _cached_run(tmp_path / "pyc")[0] == "0"  # written anew
    untouched = _cached_run(tmp_path / "ro", PYTHONDONTWRITEBYTECODE="1")
    assert untouched[0] == "2"
    assert not Path(untouched[6].strip()).exists()
