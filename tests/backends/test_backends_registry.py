"""The backend registry: built-ins, entry-point plugins (the example plugin registered through a
temporary dist-info folder on sys.path, exactly what ``pip install`` would leave), errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlproj
from mlproj.backends.registry import backend_names, get_backend
from mlproj.errors import ExecutionException
from mlproj.tracking import get_store

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "examples" / "plugin-backend" / "src"


def _register(site: Path, entry_points: dict[str, str], name: str = "mlproj_test_plugins") -> Path:
    """Write ``<name>-0.1.dist-info`` declaring ``entry_points`` in group mlproj.backends."""
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = ["[mlproj.backends]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


@pytest.fixture
def echo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = _register(tmp_path / "site", {"echo": "mlproj_echo_backend:EchoBackend"})
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.syspath_prepend(str(site))
    return site


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    (project / "MLproject").write_text(
        "name: plug\nentry_points:\n  main:\n"
        "    parameters: {msg: {type: string, default: hi}}\n"
        "    command: echo {msg}\n"
    )
    return project


def test_builtins_are_listed_first_and_plugins_after(echo_plugin: Path) -> None:
    names = backend_names()
    assert names[:3] == ["local", "kubernetes", "databricks"]
    assert "echo" in names[3:]


def test_run_through_the_example_plugin(tmp_path: Path, echo_plugin: Path) -> None:
    submitted = mlproj.run(
        str(_project(tmp_path)),
        parameters={"msg": "it's me"},
        backend="echo",
        backend_config={"prefix": "srun "},
    )
    assert submitted.get_status() == "FINISHED"
    run = get_store().get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.tags["mlflow.project.backend"] == "echo"
    assert run.tags["echo.command"] == "srun echo 'it'\"'\"'s me'"
    assert run.params == {"msg": "it's me"}
    folder = get_store().local_artifact_dir(submitted.run_id)
    assert folder is not None
    assert (folder / "echo" / "command.txt").read_text() == "srun echo 'it'\"'\"'s me'\n"


def test_plugin_validation_runs_before_a_run_is_opened(tmp_path: Path, echo_plugin: Path) -> None:
    with pytest.raises(
        ExecutionException,
        match=r"^backend_config: unknown key\(s\) 'bogus' for the echo backend; valid keys: 'prefix'$",
    ):
        mlproj.run(str(_project(tmp_path)), backend="echo", backend_config={"bogus": 1})
    assert get_store().search_runs(["0"]) == []


def test_unknown_backend_lists_the_available_ones_and_opens_no_run(
    tmp_path: Path, echo_plugin: Path
) -> None:
    with pytest.raises(ExecutionException) as caught:
        mlproj.run(str(_project(tmp_path)), backend="nomad")
    assert caught.value.message.startswith(
        "Unknown backend 'nomad'. Available backends: 'local', 'kubernetes', 'databricks', "
        "'slurm', 'ray', "
    )
    assert "'echo'" in caught.value.message
    assert "mlproj.backends" in caught.value.message
    assert get_store().search_runs(["0"]) == []


def test_factories_are_called_and_bad_plugins_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "mods" / "mlproj_test_factories.py"
    module.parent.mkdir()
    module.write_text(
        "from mlproj_echo_backend import EchoBackend\n"
        "def make():\n    return EchoBackend()\n"
        "def not_a_backend():\n    return object()\n"
        "def broken():\n    raise RuntimeError('no credentials configured')\n"
        "CONSTANT = 3\n"
    )
    site = _register(
        tmp_path / "site",
        {
            "factory": "mlproj_test_factories:make",
            "wrong": "mlproj_test_factories:not_a_backend",
            "broken": "mlproj_test_factories:broken",
            "constant": "mlproj_test_factories:CONSTANT",
            "missing": "mlproj_test_no_such_module:Backend",
            "local": "mlproj_test_factories:make",  # cannot shadow a built-in
        },
    )
    for path in (PLUGIN_SRC, module.parent, site):
        monkeypatch.syspath_prepend(str(path))
    assert get_backend("factory").name == "echo"
    with pytest.raises(ExecutionException, match="returned object, not a mlproj.backends"):
        get_backend("wrong")
    with pytest.raises(ExecutionException, match="Could not create plugin backend 'broken'.*"):
        get_backend("broken")
    with pytest.raises(ExecutionException, match="neither a Backend subclass nor a factory"):
        get_backend("constant")
    with pytest.raises(ExecutionException, match=r"Could not load plugin backend 'missing' \("):
        get_backend("missing")
    assert type(get_backend("local")).__module__ == "mlproj.backends.local"
    assert backend_names().count("local") == 1


def test_listing_and_local_import_no_sdk_and_no_plugin(tmp_path: Path) -> None:
    site = _register(tmp_path / "site", {"echo": "mlproj_echo_backend:EchoBackend"})
    code = (
        "import sys, json\n"
        "from mlproj.backends.registry import backend_names, get_backend\n"
        "names = backend_names(); get_backend('local')\n"
        "heavy = ['kubernetes', 'databricks', 'docker', 'mlproj_echo_backend']\n"
        "print(json.dumps([names, [m for m in heavy if m in sys.modules]]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN_SRC)])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    names, imported = json.loads(out.stdout)
    assert "echo" in names
    assert imported == []


def test_cli_runs_through_the_plugin(tmp_path: Path) -> None:
    site = _register(tmp_path / "site", {"echo": "mlproj_echo_backend:EchoBackend"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN_SRC)])}
    out = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(_project(tmp_path)), "-b", "echo"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "echo backend: would run 'echo hi'" in out.stderr
    (run,) = get_store().search_runs(["0"])
    assert run.tags["echo.command"] == "echo hi"
    bad = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(_project(tmp_path / "b")), "-b", "nope"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode != 0
    assert "Unknown backend 'nope'. Available backends: 'local', 'kubernetes'" in bad.stderr
    assert "Traceback" not in bad.stderr
