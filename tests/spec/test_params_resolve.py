"""resolve_parameters: every check happens here, with messages naming param, value and file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.spec.params import ResolvedParameters, resolve_parameters
from mlproj.spec.project import EntryPoint, Parameter, load_project

SPEC = """\
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      epochs: {type: int, default: 10, min: 1, max: 1000}
      flag: {type: bool, default: "yes"}
      name: {type: string, default: world}
      opt: {default: adam, choices: [adam, sgd]}
      ratio: {type: float, default: 0.1, choices: [0.1, 0.25]}
    command: "python train.py {alpha} {epochs} {flag} {name} {opt} {ratio}"
  needs:
    parameters:
      a: float
      b: {type: int}
      c: {type: string, default: null}
      d: {default: x}
    command: "echo {a} {b} {c} {d}"
  files:
    parameters:
      data: {type: path, default: data/train.csv}
      out: {type: path, default: "."}
      src: {type: uri, default: "s3://bucket/key"}
    command: "echo {data} {out} {src}"
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("a,b\n")
    (root / "MLproject").write_text(SPEC)
    return root


def resolve(
    project_dir: Path, entry: str, params: Mapping[str, object] | None, **kwargs: object
) -> ResolvedParameters:
    project = load_project(project_dir)
    return resolve_parameters(
        project.get_entry_point(entry),
        params,
        project_dir=project.directory,
        spec_path=project.spec_path,
        **kwargs,  # type: ignore[arg-type]
    )


def resolve_error(project_dir: Path, entry: str, params: Mapping[str, object] | None) -> str:
    with pytest.raises(ExecutionException) as info:
        resolve(project_dir, entry, params)
    return str(info.value)


def test_defaults_are_filled_and_normalised(project_dir: Path) -> None:
    resolved = resolve(project_dir, "main", None)
    assert resolved.declared == {
        "alpha": "0.5",
        "epochs": "10",
        "flag": "yes",
        "name": "world",
        "opt": "adam",
        "ratio": "0.1",
    }
    assert resolved.extra == {}
    assert resolved.local_paths == {}
    assert resolved.download_dir is None


def test_missing_parameters_are_listed_in_one_error(project_dir: Path) -> None:
    message = resolve_error(project_dir, "needs", {"d": "y"})
    assert message == (
        f"No value given for missing parameters: 'a', 'b', 'c' of entry point 'needs' "
        f"({project_dir / 'MLproject'}); pass them with -P NAME=VALUE"
    )


def test_none_counts_as_not_given(project_dir: Path) -> None:
    message = resolve_error(project_dir, "needs", {"a": None, "b": 1, "c": "x"})
    assert "missing parameters: 'a' of" in message
    resolved = resolve(project_dir, "main", {"alpha": None, "extra": None})
    assert resolved.declared["alpha"] == "0.5"
    assert resolved.extra == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0.004", "0.004"),
        ("-0.99", "-0.99"),
        ("1e-5", "1e-05"),
        ("0.00001", "1e-05"),
        ("1", "1.0"),
        (" 2.5 ", "2.5"),
        ("1_000.5", "1000.5"),
        ("inf", "inf"),
        (0.5, "0.5"),
        (3, "3.0"),
        (1e-05, "1e-05"),
    ],
)
def test_float_values_are_normalised(project_dir: Path, given: object, expected: str) -> None:
    """Normalised like Python's float repr, so a script logging float(argv) logs the same text."""
    assert resolve(project_dir, "main", {"alpha": given}).declared["alpha"] == expected


@pytest.mark.parametrize("given", ["abc", "", "1.2.3", "0x10", True, [1.0]])
def test_float_errors(project_dir: Path, given: object) -> None:
    message = resolve_error(project_dir, "main", {"alpha": given})
    assert message == (
        f"Parameter 'alpha' of entry point 'main' ({project_dir / 'MLproject'}): "
        f"expected float, got {given!r}"
    )


@pytest.mark.parametrize(
    ("given", "expected"), [("010", "10"), (" 7", "7"), ("+5", "5"), (12, "12"), (20.0, "20")]
)
def test_int_values_are_normalised(project_dir: Path, given: object, expected: str) -> None:
    assert resolve(project_dir, "main", {"epochs": given}).declared["epochs"] == expected


@pytest.mark.parametrize("given", ["1.5", 1.5, "abc", "1e3", "", False])
def test_int_errors(project_dir: Path, given: object) -> None:
    message = resolve_error(project_dir, "main", {"epochs": given})
    assert message.endswith(
        f"'epochs' of entry point 'main' ({project_dir / 'MLproject'}): expected int, got {given!r}"
    )


@pytest.mark.parametrize(
    ("given", "message"), [("0", ">= 1, got '0'"), (5000, "<= 1000, got 5000")]
)
def test_int_bounds(project_dir: Path, given: object, message: str) -> None:
    assert resolve_error(project_dir, "main", {"epochs": given}).endswith(
        f"({project_dir / 'MLproject'}): expected a value {message}"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("true", "true"),
        ("False", "False"),
        ("YES", "YES"),
        ("no", "no"),
        ("1", "1"),
        ("0", "0"),
        ("On", "On"),
        ("off", "off"),
        (True, "True"),
        (False, "False"),
    ],
)
def test_bool_values_keep_the_users_text(project_dir: Path, given: object, expected: str) -> None:
    assert resolve(project_dir, "main", {"flag": given}).declared["flag"] == expected


@pytest.mark.parametrize("given", ["maybe", "2", "", "y"])
def test_bool_errors(project_dir: Path, given: str) -> None:
    message = resolve_error(project_dir, "main", {"flag": given})
    assert message.endswith(
        f"Parameter 'flag' of entry point 'main' ({project_dir / 'MLproject'}): "
        f"expected bool (true/false, yes/no, 1/0, on/off), got {given!r}"
    )


def test_choices(project_dir: Path) -> None:
    assert resolve(project_dir, "main", {"opt": "sgd"}).declared["opt"] == "sgd"
    message = resolve_error(project_dir, "main", {"opt": "rmsprop"})
    assert message == (
        f"Parameter 'opt' of entry point 'main' ({project_dir / 'MLproject'}): "
        "expected one of 'adam', 'sgd', got 'rmsprop'"
    )
    # Numeric choices compare by value, so 0.250 matches 0.25.
    assert resolve(project_dir, "main", {"ratio": "0.250"}).declared["ratio"] == "0.25"
    assert "expected one of 0.1, 0.25, got '0.3'" in resolve_error(
        project_dir, "main", {"ratio": "0.3"}
    )


def test_string_values_use_str(project_dir: Path) -> None:
    resolved = resolve(project_dir, "main", {"name": 42})
    assert resolved.declared["name"] == "42"
    resolved = resolve(project_dir, "main", {"name": "x; touch /tmp/pwned"})
    assert resolved.declared["name"] == "x; touch /tmp/pwned"  # logged as given, not quoted


def test_extra_parameters_keep_user_order_and_are_case_sensitive(project_dir: Path) -> None:
    resolved = resolve(
        project_dir, "main", {"zeta": 1, "ALPHA": "0.9", "alpha": "0.2", "b": True, "c": [1, 2]}
    )
    assert resolved.declared["alpha"] == "0.2"
    assert list(resolved.extra.items()) == [
        ("zeta", "1"),
        ("ALPHA", "0.9"),
        ("b", "True"),
        ("c", "[1, 2]"),
    ]
    assert resolved.as_logged() == {**resolved.declared, **resolved.extra}


def test_empty_parameter_name(project_dir: Path) -> None:
    assert "has an empty name" in resolve_error(project_dir, "main", {"": "x"})


# --- path and uri ----------------------------------------------------------------------------


def test_path_default_resolves_against_project_folder(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resolved = resolve(project_dir, "files", None)
    assert resolved.declared["data"] == str(project_dir / "data" / "train.csv")
    assert resolved.declared["out"] == str(project_dir)
    assert resolved.local_paths == {"data": project_dir / "data" / "train.csv", "out": project_dir}
    assert resolved.declared["src"] == "s3://bucket/key"  # uri kept as given, never fetched


def test_user_path_resolves_against_callers_folder(project_dir: Path, tmp_path: Path) -> None:
    caller = tmp_path / "caller"
    (caller / "mine").mkdir(parents=True)
    (caller / "mine" / "x.csv").write_text("1\n")
    resolved = resolve(project_dir, "files", {"data": "mine/x.csv"}, cwd=caller)
    assert resolved.declared["data"] == str(caller / "mine" / "x.csv")
    assert resolved.local_paths["data"] == caller / "mine" / "x.csv"


def test_user_path_defaults_to_os_cwd(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here.txt").write_text("")
    monkeypatch.chdir(tmp_path)
    resolved = resolve(project_dir, "files", {"data": "here.txt"})
    assert resolved.declared["data"] == str(tmp_path / "here.txt")


def test_local_file_uri_and_absolute_path(project_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "with space.txt"
    target.write_text("")
    resolved = resolve(project_dir, "files", {"data": "file://" + str(target).replace(" ", "%20")})
    assert resolved.local_paths["data"] == target
    assert resolve(project_dir, "files", {"out": str(tmp_path)}).declared["out"] == str(tmp_path)


def test_missing_path_names_param_value_and_base(project_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExecutionException) as info:
        resolve(project_dir, "files", {"data": "nope.csv"}, cwd=tmp_path)
    assert str(info.value) == (
        f"Parameter 'data' of entry point 'files' ({project_dir / 'MLproject'}): no such file "
        f"or directory 'nope.csv' (looked for {tmp_path / 'nope.csv'}, relative to the current "
        "folder)"
    )


def test_missing_path_default(tmp_path: Path) -> None:
    entry = EntryPoint("e", "cat {p}", {"p": Parameter("p", "path", "gone.txt")})
    with pytest.raises(ExecutionException) as info:
        resolve_parameters(entry, {}, project_dir=tmp_path)
    assert "no such file or directory 'gone.txt'" in str(info.value)
    assert f"looked for {tmp_path / 'gone.txt'}, relative to the project folder" in str(info.value)


@pytest.mark.parametrize("given", ["s3://b/k", "file:///tmp/x", "https://host/a?b=1", "dbfs:/x"])
def test_uri_values_are_kept(project_dir: Path, given: str) -> None:
    assert resolve(project_dir, "files", {"src": given}).declared["src"] == given


@pytest.mark.parametrize("given", ["/tmp/x", "relative/dir", "C:\\data\\x.csv", "c:/x", ""])
def test_uri_needs_a_scheme(project_dir: Path, given: str) -> None:
    message = resolve_error(project_dir, "files", {"src": given})
    assert message.startswith(
        f"Parameter 'src' of entry point 'files' ({project_dir / 'MLproject'})"
    )
    assert message.endswith(f"got {given!r}")


def test_bad_values_are_found_before_any_download(project_dir: Path, tmp_path: Path) -> None:
    """A remote path plus a bad float: the error comes first and no storage folder is made."""
    storage = tmp_path / "storage"
    entry = EntryPoint(
        "e",
        "echo {data} {x}",
        {"data": Parameter("data", "path"), "x": Parameter("x", "float")},
    )
    with pytest.raises(ExecutionException, match="expected float"):
        resolve_parameters(
            entry,
            {"data": "http://127.0.0.1:9/x.csv", "x": "abc"},
            project_dir=project_dir,
            storage_dir=storage,
        )
    assert not storage.exists()


def test_remote_path_is_downloaded_into_storage_dir(
    tmp_path: Path, http_folder: tuple[Path, str]
) -> None:
    """Real download through mlproj.downloads from a local HTTP server."""
    served, url = http_folder
    (served / "train.csv").write_text("a,b\n1,2\n")
    entry = EntryPoint(
        "e",
        "cat {first} {data}",
        {"first": Parameter("first", "string", "x"), "data": Parameter("data", "path")},
    )
    storage = tmp_path / "not" / "yet"
    resolved = resolve_parameters(
        entry, {"data": f"{url}/train.csv"}, project_dir=tmp_path, storage_dir=storage
    )
    assert resolved.declared["data"] == f"{url}/train.csv"  # logged as the user gave it
    local = resolved.local_paths["data"]
    assert resolved.download_dir is not None
    assert resolved.download_dir.parent == storage
    assert local.is_relative_to(resolved.download_dir / "param_1")  # declaration index 1
    assert local.read_text() == "a,b\n1,2\n"
    # A second resolve makes a new folder: runs never share downloads.
    again = resolve_parameters(
        entry, {"data": f"{url}/train.csv"}, project_dir=tmp_path, storage_dir=storage
    )
    assert again.download_dir != resolved.download_dir


def test_failed_download_is_one_clear_error(tmp_path: Path, http_folder: tuple[Path, str]) -> None:
    _, url = http_folder
    entry = EntryPoint("e", "cat {data}", {"data": Parameter("data", "path")})
    with pytest.raises(ExecutionException) as info:
        resolve_parameters(
            entry, {"data": f"{url}/missing.csv"}, project_dir=tmp_path, storage_dir=tmp_path
        )
    message = str(info.value)
    assert message.startswith("Parameter 'data' of entry point 'e'")
    assert "missing.csv" in message


@pytest.mark.parametrize(
    ("given", "problem"),
    [("~no_such_user_xyz/data.csv", "no such file or directory"), ("bad\0byte", "NUL character")],
)
def test_odd_paths_are_clear_errors(project_dir: Path, given: str, problem: str) -> None:
    message = resolve_error(project_dir, "files", {"data": given})
    assert message.startswith("Parameter 'data' of entry point 'files'")
    assert problem in message


def test_home_folder_is_expanded(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "in_home.csv").write_text("")
    resolved = resolve(project_dir, "files", {"data": "~/in_home.csv"})
    assert resolved.local_paths["data"] == tmp_path / "in_home.csv"


def test_non_string_scalar_path_default(tmp_path: Path) -> None:
    """YAML turns `default: 2024-01-01` into a date; as in MLflow it names a folder."""
    (tmp_path / "2024-01-01").mkdir()
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters:\n      day: {type: path, default: 2024-01-01}\n"
        "    command: ls {day}\n"
    )
    resolved = resolve(tmp_path, "main", {})
    assert resolved.declared["day"] == str(tmp_path / "2024-01-01")


def test_parameters_must_be_a_mapping(project_dir: Path) -> None:
    message = resolve_error(project_dir, "main", ["alpha=1"])  # type: ignore[arg-type]
    assert "must be a mapping of names to values, got list" in message
