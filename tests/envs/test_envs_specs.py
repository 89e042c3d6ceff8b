"""Spec parsing, conda conversion, interpreter matching and manager choice (no builds)."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from mlproj.envs import choose_manager, get_manager, manager_names
from mlproj.envs.python.condaspec import convert_conda_dependencies, to_pip_constraint
from mlproj.envs.python.interpreters import discover, find_interpreter, matcher
from mlproj.envs.python.pyspec import (
    install_args,
    load_python_env,
    referenced_files,
)
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project

PY310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")


def project(tmp_path: Path, env_type: str, env_file: str | None = None) -> Project:
    return Project(
        directory=tmp_path,
        spec_path=None,
        name=None,
        entry_points={},
        env_type=env_type,  # type: ignore[arg-type]
        env_file=tmp_path / env_file if env_file else None,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# --- python_env.yaml ------------------------------------------------------------------------


def test_python_env_is_parsed(tmp_path: Path) -> None:
    spec = load_python_env(
        write(
            tmp_path / "python_env.yaml",
            """
            python: "3.10"
            build_dependencies: [pip, "setuptools>=60"]
            dependencies:
              - six==1.16.0
              - -r requirements.txt
              - 'foo; python_version < "3.11"'
            """,
        )
    )
    assert spec.python == "3.10"
    assert spec.build_dependencies == ("pip", "setuptools>=60")
    assert spec.dependencies == (
        "six==1.16.0",
        "-r requirements.txt",
        'foo; python_version < "3.11"',
    )
    # Option lines split like a shell; requirement lines (markers with quotes) stay one argument.
    assert install_args(spec.dependencies) == [
        "six==1.16.0",
        "-r",
        "requirements.txt",
        'foo; python_version < "3.11"',
    ]


def test_python_version_read_as_a_float_says_to_quote_it(tmp_path: Path) -> None:
    path = write(tmp_path / "python_env.yaml", "python: 3.10\n")
    with pytest.raises(ExecutionException) as info:
        load_python_env(path)
    assert str(info.value) == (
        f'{path}: python: 3.10 is read by YAML as the number 3.1; quote the version: python: "3.10"'
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("pyhton: '3.10'\n", "unknown key(s) pyhton"),
        ("- six\n", "expected a mapping"),
        ("dependencies: six\n", "dependencies: expected a list"),
        ("python: [3]\n", "python: expected a version string"),
        ("python: '3.10\n", "not valid YAML"),
    ],
)
def test_python_env_mistakes_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "python_env.yaml", text)
    with pytest.raises(ExecutionException) as info:
        load_python_env(path)
    assert str(info.value).startswith(f"{path}: ")
    assert needle in str(info.value)


def test_referenced_requirement_files_are_followed_recursively(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    write(tmp_path / "requirements.txt", "-r reqs/base.txt\nsix\n")
    write(tmp_path / "reqs" / "base.txt", "--constraint=pins.txt\nidna\n")
    write(tmp_path / "reqs" / "pins.txt", "idna==3.7\n")
    found = referenced_files(("-r requirements.txt", "-cconstraints.txt"), tmp_path)
    assert found == [
        (tmp_path / "requirements.txt").resolve(),
        (tmp_path / "reqs" / "base.txt").resolve(),
        (tmp_path / "reqs" / "pins.txt").resolve(),
        (tmp_path / "constraints.txt").resolve(),
    ]


# --- conda.yaml conversion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("", ""),
        ("=1.26", "==1.26.*"),
        ("=1.26.4=py310h5f9d8c6_0", "==1.26.4.*"),
        ("==1.26.4", "==1.26.4"),
        (">=1.2,<2", ">=1.2,<2"),
        ("1.26.*", "==1.26.*"),
        ("=1.26*", "==1.26.*"),
    ],
)
def test_conda_pins_become_pip_pins(conda: str, pip: str) -> None:
    assert to_pip_constraint(conda) == pip


def test_conda_dependencies_are_converted(tmp_path: Path) -> None:
    converted = convert_conda_dependencies(
        tmp_path / "conda.yaml",
        [
            "python=3.10",
            "pip=24.0",
            "conda-forge::scikit-learn=1.4",
            "pytorch",
            "libgfortran-ng",
            "_libgcc_mutex=0.1=main",
            {"pip": ["mlflow", "-r requirements.txt"]},
            {"pip": ["idna"]},
        ],
    )
    spec = converted.spec
    assert spec.python == "3.10"
    assert spec.build_dependencies == ("pip==24.0.*",)
    # Several pip sections are all kept (MLflow keeps only the last one).
    assert spec.dependencies == ("mlflow", "-r requirements.txt", "idna")
    assert spec.optional_dependencies == ("scikit-learn==1.4.*", "torch")
    assert converted.dropped == ("libgfortran-ng", "_libgcc_mutex=0.1=main")


@pytest.mark.parametrize(
    ("entry", "python"),
    [("python", None), ("python=3.10", "3.10"), ("python==3.10.13", "3.10.13"),
     ("python>=3.9", ">=3.9"), ("python 3.11", "3.11")],
)  # fmt: skip
def test_conda_python_pin_becomes_a_version_request(
    tmp_path: Path, entry: str, python: str | None
) -> None:
    assert convert_conda_dependencies(tmp_path / "c.yaml", [entry]).spec.python == python


def test_conda_invalid_entry_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException) as info:
        convert_conda_dependencies(tmp_path / "conda.yaml", [["six"]])
    assert "conda.yaml: dependencies: invalid entry" in str(info.value)


# --- interpreters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "version", "ok"),
    [
        ("3.10", (3, 10, 13), True),
        ("3.10", (3, 11, 0), False),
        ("3.10.13", (3, 10, 13), True),
        ("3.10.13", (3, 10, 12), False),
        (">=3.9", (3, 9, 0), True),
        (">=3.9,<3.11", (3, 11, 7), False),
        ("~=3.10.2", (3, 10, 13), True),
        ("==3.10.*", (3, 10, 1), True),
        ("!=3.10.*", (3, 10, 1), False),
        ("3", (3, 12, 0), True),
        (None, (2, 7, 18), True),
    ],
)
def test_version_requests_match(
    request_text: str | None, version: tuple[int, int, int], ok: bool
) -> None:
    assert matcher(request_text)(version) is ok


def test_unreadable_version_request_is_a_clear_error() -> None:
    with pytest.raises(ExecutionException) as info:
        matcher("three-ten", where="python_env.yaml: python")
    assert "python_env.yaml: python: cannot read the Python version 'three-ten'" in str(info.value)


@pytest.mark.skipif(not PY310.exists(), reason="needs pyenv's Python 3.10.13 in /root/.pyenv")
@pytest.mark.parametrize("request_text", ["3.10", "3.10.13", "==3.10.*", ">=3.10,<3.11"])
def test_python_310_is_found_in_pyenv_without_download(request_text: str, tmp_path: Path) -> None:
    found = find_interpreter(request_text, tmp_path / "probes.json")
    assert found is not None
    assert found.version == (3, 10, 13)
    assert found.path == PY310.resolve()


def test_pyenv_shims_on_path_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shim that fails outside pyenv's shell setup must not be taken for an interpreter."""
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3.99"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.99: command not found' >&2\nexit 127\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    assert all(i.path.parent != shims for i in discover(tmp_path / "probes.json"))


def test_interpreter_versions_are_probed_once_then_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "python3"
    count = tmp_path / "count"
    fake.write_text(f"#!/bin/sh\necho x >> {count}\necho 3.99.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "probes.json"
    for _ in range(3):
        assert find_interpreter("3.99", cache) is not None
    assert count.read_text().count("x") == 1


# --- choosing a manager ---------------------------------------------------------------------


def test_registry_lists_every_manager() -> None:
    assert manager_names() == ["local", "uv", "virtualenv", "conda", "docker"]


def test_invalid_manager_name_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException) as info:
        choose_manager(project(tmp_path, "python_env"), "pipenv")
    assert str(info.value) == (
        "Invalid value for env_manager: 'pipenv'. Must be one of 'local', 'uv', 'virtualenv', "
        "'conda'"
    )
    with pytest.raises(ExecutionException, match="Must be one of"):
        get_manager("nope")


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_CONDA_HOME", raising=False)
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert choose_manager(project(tmp_path, "python_env"), None).name == "uv"
    assert choose_manager(project(tmp_path, "none"), None).name == "local"
    # No conda on this machine: conda.yaml is converted for uv.
    assert choose_manager(project(tmp_path, "conda_env", "conda.yaml"), None).name == "uv"
    assert choose_manager(project(tmp_path, "none"), "virtualenv").tag_value == "virtualenv"


def test_conda_env_defaults_to_conda_when_one_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """conda cannot be installed here; a stand-in executable named conda plays its part."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "conda").write_text("#!/bin/sh\nexit 0\n")
    (folder / "conda").chmod(0o755)
    monkeypatch.delenv("MLFLOW_CONDA_HOME", raising=False)
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin:/bin")
    manager = choose_manager(project(tmp_path, "conda_env", "conda.yaml"), None)
    assert (manager.name, manager.tag_value) == ("conda", "conda")


@pytest.mark.parametrize("env_type", ["python_env", "none"])
def test_conda_for_a_project_without_conda_yaml_is_refused(tmp_path: Path, env_type: str) -> None:
    with pytest.raises(ExecutionException, match="cannot be executed using conda"):
        choose_manager(project(tmp_path, env_type), "conda")


def test_docker_projects_use_docker_whatever_env_manager_says(tmp_path: Path) -> None:
    docker_project = project(tmp_path, "docker")
    try:
        import mlproj.envs.docker  # noqa: F401
    except ImportError:
        with pytest.raises(ExecutionException, match="'docker' environment manager is not"):
            choose_manager(docker_project, "uv")
        return
    for choice in (None, "local", "uv", "conda"):
        assert choose_manager(docker_project, choice).name == "docker"


def test_docker_cannot_be_chosen_for_other_projects(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match="Invalid value for env_manager: 'docker'"):
        choose_manager(project(tmp_path, "python_env"), "docker")


def test_validate_catches_a_float_python_before_any_run(tmp_path: Path) -> None:
    write(tmp_path / "python_env.yaml", "python: 3.10\n")
    manager = choose_manager(project(tmp_path, "python_env", "python_env.yaml"), None)
    with pytest.raises(ExecutionException, match="quote the version"):
        manager.validate(project(tmp_path, "python_env", "python_env.yaml"))


def test_pyenv_root_and_uv_managed_interpreters_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folder names state the version, so these are found without running them."""
    pyenv = tmp_path / "pyenv"
    uv_dir = tmp_path / "uv-python"
    for exe in (
        pyenv / "versions" / "3.97.2" / "bin" / "python3",
        uv_dir / "cpython-3.98.4-linux-x86_64-gnu" / "bin" / "python3",
    ):
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\nexit 1\n")  # never run: the version comes from the folder
        exe.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(uv_dir))
    cache = tmp_path / "probes.json"
    found = find_interpreter("3.97", cache)
    assert found is not None and (found.version, found.source) == ((3, 97, 2), "pyenv")
    found = find_interpreter(">=3.98", cache)
    assert found is not None and (found.version, found.source) == ((3, 98, 4), "uv")


def test_pip_index_settings_carry_over_to_uv() -> None:
    from mlproj.envs.python.uv import UvManager

    env = UvManager.build_env(
        {
            "PIP_INDEX_URL": "https://mirror.example/simple",
            "PIP_FIND_LINKS": "/opt/wheels /srv/wheels",
            "PIP_EXTRA_INDEX_URL": "https://a.example/simple",
            "UV_EXTRA_INDEX_URL": "https://uv.example/simple",
            "VIRTUAL_ENV": "/somewhere/.venv",
        }
    )
    assert env["UV_INDEX_URL"] == "https://mirror.example/simple"
    assert env["UV_FIND_LINKS"] == "/opt/wheels,/srv/wheels"
    assert env["UV_EXTRA_INDEX_URL"] == "https://uv.example/simple"  # uv's own setting wins
    assert "VIRTUAL_ENV" not in env  # builds never target the caller's venv
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
