"""The parse cache of YAML files: a warm load of an unchanged MLproject does not import PyYAML,
and the cache never changes what a file means."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlproj import yaml_cache
from mlproj.home import mlproj_home

LOAD = """
import json, sys
import mlproj
project = mlproj.load_project(sys.argv[1])
print(json.dumps([sorted(project.entry_points), "yaml" in sys.modules]))
"""


def _load_in_child(folder: Path) -> tuple[list[str], bool]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(folder)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    names, imported = json.loads(done.stdout)
    return names, imported


def test_unchanged_mlproject_is_loaded_without_pyyaml(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("entry_points:\n  main:\n    command: 'true'\n")
    assert _load_in_child(tmp_path) == (["main"], True)  # parsed, then remembered
    assert _load_in_child(tmp_path) == (["main"], False)
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  main:\n    command: 'true'\n  other:\n    command: 'false'\n"
    )
    assert _load_in_child(tmp_path) == (["main", "other"], True)  # the new text is parsed


def test_data_json_would_change_is_not_kept() -> None:
    text = "1: one\nx: .nan\n"
    yaml_cache.remember(text, {1: "one"})
    yaml_cache.remember(text + "#", {"x": float("nan")})
    assert yaml_cache.lookup(text) is yaml_cache.MISSING
    assert yaml_cache.lookup(text + "#") is yaml_cache.MISSING
    yaml_cache.remember("a: [1, 2.5, true, null]\n", {"a": [1, 2.5, True, None]})
    assert yaml_cache.lookup("a: [1, 2.5, true, null]\n") == {"a": [1, 2.5, True, None]}


def test_damaged_or_foreign_entries_are_ignored() -> None:
    text = "a: 1\n"
    yaml_cache.remember(text, {"a": 1})
    (entry,) = (mlproj_home() / "yaml").iterdir()
    entry.write_text("{not json")
    assert yaml_cache.lookup(text) is yaml_cache.MISSING
    # Same name, other text (a crc32 collision): never used for this text.
    entry.write_text(json.dumps({"version": 1, "text": "b: 2\n", "data": {"b": 2}}))
    assert yaml_cache.lookup(text) is yaml_cache.MISSING
