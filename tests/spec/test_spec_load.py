"""load_project: MLflow-compatible loading and one clear error per malformed input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from spec_mlflow_example import MLFLOW_EXAMPLE_ENTRY_POINTS

from mlproj.errors import ExecutionException
from mlproj.spec.project import DockerEnv, Parameter, load_project


def write_project(root: Path, spec: str | None, *files: str, name: str = "MLproject") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if spec is not None:
        (root / name).write_text(textwrap.dedent(spec))
    for file_name in files:
        (root / file_name).write_text("# placeholder\n")
    return root


def load_error(root: Path, spec: str, *files: str) -> str:
    write_project(root, spec, *files)
    with pytest.raises(ExecutionException) as info:
        load_project(root)
    message = str(info.value)
    assert message.startswith(f"{root / 'MLproject'}: "), message
    return message


# --- MLflow compatibility -------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["MLproject", "MLProject", "mlproject", "MLPROJECT"])
def test_spec_file_name_is_case_insensitive(tmp_path: Path, file_name: str) -> None:
    spec = "entry_points:\n  main:\n    command: echo hi\n"
    write_project(tmp_path, spec, name=file_name)
    project = load_project(tmp_path)
    assert project.spec_path == tmp_path / file_name
    assert project.entry_points["main"].command == "echo hi"


def test_mlproject_yaml_is_not_a_spec_file(tmp_path: Path) -> None:
    write_project(tmp_path, "entry_points: {main: {command: echo}}", name="MLproject.yaml")
    project = load_project(tmp_path)
    assert project.spec_path is None
    assert project.entry_points == {}


def test_no_mlproject_gives_empty_project(tmp_path: Path) -> None:
    project = load_project(tmp_path)
    assert project.directory == tmp_path
    assert project.spec_path is None
    assert project.name is None
    assert project.entry_points == {}
    assert (project.env_type, project.env_file) == ("none", None)


@pytest.mark.parametrize(
    ("files", "env_type", "env_file"),
    [
        (["python_env.yaml"], "python_env", "python_env.yaml"),
        (["conda.yaml"], "conda_env", "conda.yaml"),
        (["conda.yaml", "python_env.yaml"], "python_env", "python_env.yaml"),
        (["environment.yml", "requirements.txt"], "none", None),
    ],
)
@pytest.mark.parametrize("with_spec", [False, True])
def test_default_env_files(
    tmp_path: Path, files: list[str], env_type: str, env_file: str | None, with_spec: bool
) -> None:
    spec = "name: p\nentry_points: {main: {command: echo}}\n" if with_spec else None
    write_project(tmp_path, spec, *files)
    project = load_project(tmp_path)
    assert project.env_type == env_type
    assert project.env_file == (tmp_path / env_file if env_file else None)


def test_declared_env_files_are_absolute(tmp_path: Path) -> None:
    write_project(tmp_path, "conda_env: envs/my-env.yaml\n")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "my-env.yaml").write_text("name: x\n")
    (tmp_path / "python_env.yaml").write_text("python: '3.11'\n")  # declared one wins
    project = load_project(tmp_path)
    assert project.env_type == "conda_env"
    assert project.env_file == tmp_path / "envs" / "my-env.yaml"

    write_project(tmp_path, "python_env: python_env.yaml\n")
    project = load_project(str(tmp_path))  # str paths work too
    assert (project.env_type, project.env_file) == ("python_env", tmp_path / "python_env.yaml")


def test_unknown_top_level_keys_are_ignored(tmp_path: Path) -> None:
    spec = """\
        name: demo
        key: value
        another: [1, 2]
        entry_points:
          main:
            command: echo {x}
            description: extra keys in an entry point are ignored too
            parameters:
              x: {type: int, default: 3, unknown_key: 1}
        """
    project = load_project(write_project(tmp_path, spec, "conda.yaml"))
    assert project.name == "demo"
    assert project.env_type == "conda_env"
    assert project.entry_points["main"].parameters["x"] == Parameter("x", "int", 3)


def test_databricks_spark_job_is_kept_raw(tmp_path: Path) -> None:
    spec = """\
        name: spark
        databricks_spark_job:
          python_file: train.py
          parameters: ["--x", "1"]
        """
    project = load_project(write_project(tmp_path, spec))
    assert project.databricks_spark_job == {"python_file": "train.py", "parameters": ["--x", "1"]}
    message = load_error(tmp_path, "databricks_spark_job: [a, b]\n")
    assert "databricks_spark_job: expected a mapping, got a list (line 1)" in message


def test_mlflow_example_project_loads(tmp_path: Path) -> None:
    """The layout of MLflow's own test project (greeter, path, uri, int parameters)."""
    spec = "conda_env: conda.yaml\n\n" + MLFLOW_EXAMPLE_ENTRY_POINTS
    project = load_project(write_project(tmp_path, spec, "conda.yaml"))
    assert list(project.entry_points) == ["main", "greeter", "line_count", "download_uri", "sleep"]
    greeter = project.entry_points["greeter"]
    assert greeter.command == "python greeter.py {greeting} {name}"
    assert list(greeter.parameters) == ["greeting", "name"]
    assert greeter.parameters["greeting"].default == "hi"
    assert greeter.parameters["name"] == Parameter("name", "string", None)
    assert greeter.parameters["name"].required
    assert greeter.spec_path == tmp_path / "MLproject"
    assert project.entry_points["line_count"].parameters["path"].type == "path"
    assert project.entry_points["sleep"].parameters["duration"].type == "int"


def test_parameter_declaration_forms(tmp_path: Path) -> None:
    spec = """\
        entry_points:
          main:
            parameters:
              a: float
              b: {}
              c: {type: int, default: null}
              d: {type: int, default: 0}
              e: {default: ""}
              f: {type: Float, default: 0.5}
              g: {type: str, default: x}
              h: {type: bool, default: false, help: Turn it on}
              i: {type: float, default: 0.5, choices: [0.1, 0.5], min: 0, max: 1}
            command: "echo {a}"
        """
    params = load_project(write_project(tmp_path, spec)).entry_points["main"].parameters
    assert params["a"] == Parameter("a", "float")
    assert params["b"] == Parameter("b", "string")
    assert params["c"].required
    assert params["d"].default == 0 and not params["d"].required
    assert params["e"].default == "" and not params["e"].required
    assert params["f"].type == "float"
    assert params["g"].type == "string"
    assert params["h"] == Parameter("h", "bool", False, help="Turn it on")
    assert params["i"] == Parameter("i", "float", 0.5, choices=(0.1, 0.5), min=0, max=1)


def test_docker_env_is_parsed(tmp_path: Path) -> None:
    spec = """\
        name: dock
        docker_env:
          image: python:3.11-slim
          volumes: ["/data:/data"]
          environment: [HOME_COPY, [MODE, train], [PORT, 8080]]
        entry_points: {main: {command: echo}}
        """
    project = load_project(write_project(tmp_path, spec, "conda.yaml"))
    assert (project.env_type, project.env_file) == ("docker", None)
    assert project.docker_env == DockerEnv(
        image="python:3.11-slim",
        volumes=("/data:/data",),
        environment=("HOME_COPY", ("MODE", "train"), ("PORT", "8080")),
    )


def test_load_is_not_confused_by_a_folder_named_mlproject(tmp_path: Path) -> None:
    (tmp_path / "mlproject").mkdir()
    assert load_project(tmp_path).spec_path is None


# --- errors: file level ----------------------------------------------------------------------


def test_missing_project_folder(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match=r"Project folder .*nope does not exist"):
        load_project(tmp_path / "nope")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)
    assert "the file is empty" in message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    spec = "name: x\nentry_points:\n  main:\n    command: [unclosed\n    other: 1\n"
    message = load_error(tmp_path, spec)
    assert "not valid YAML" in message
    assert "(line 5, column" in message


def test_two_documents_are_an_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, "name: a\n---\nname: b\n")
    assert "not valid YAML" in message and "line 2" in message


def test_undecodable_bytes(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_bytes(b"name: \xff\xfe\x00bad\n")
    with pytest.raises(ExecutionException, match="not valid YAML"):
        load_project(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'name: x\nentry_points:\n  main:\n    command: "echo \xff"\n', "(0xff, line 4)"),
        (b"name: x\n\x01\n", "(0x01, line 2)"),
    ],
    ids=["not UTF-8", "control character"],
)
def test_undecodable_bytes_are_one_line_naming_the_line(
    tmp_path: Path, raw: bytes, expected: str
) -> None:
    (tmp_path / "MLproject").write_bytes(raw)
    with pytest.raises(ExecutionException) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert "\n" not in message and expected in message and "save the file as UTF-8" in message


def test_tab_indentation_says_so(tmp_path: Path) -> None:
    message = load_error(tmp_path, "entry_points:\n\tmain:\n\t\tcommand: echo hi\n")
    assert "(line 2, column 1); YAML indents with spaces, not tabs" in message


@pytest.mark.parametrize(
    ("text", "shown"), [("- a\n- b\n", "a list"), ("just text\n", "'just text'"), ("42\n", "42")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, shown: str) -> None:
    message = load_error(tmp_path, text)
    assert message.endswith(f"expected a mapping of keys (name, entry_points, ...), got {shown}")


def test_two_spec_files_differing_in_case(tmp_path: Path) -> None:
    write_project(tmp_path, "name: a\n", name="MLproject")
    write_project(tmp_path, "name: b\n", name="mlproject")
    if len(list(tmp_path.iterdir())) < 2:
        pytest.skip("case-insensitive file system: only one file can exist")
    with pytest.raises(ExecutionException, match="several MLproject files"):
        load_project(tmp_path)


# --- errors: key paths, values and lines ------------------------------------------------------

ERROR_CASES = [
    # (spec, expected message tail after "<file>: ")
    ("name: [a]\n", "name: expected a string, got a list (line 1)"),
    ("entry_points: [main]\n", "entry_points: expected a mapping, got a list (line 1)"),
    (
        "entry_points:\n  main: python x.py\n",
        "entry_points.main: expected a mapping with `command` (and `parameters`), "
        "got 'python x.py' (line 2)",
    ),
    (
        "entry_points:\n  main:\n    parameters: {}\n",
        "entry_points.main: missing `command`: add the shell command this entry point runs "
        "(line 2)",
    ),
    (
        "entry_points:\n  main:\n    command: 42\n",
        "entry_points.main.command: expected a string, got 42 (line 3)",
    ),
    (
        "entry_points:\n  main:\n    command: [python, x.py]\n",
        "entry_points.main.command: expected a string, got a list (line 3)",
    ),
    (
        "entry_points:\n  main:\n    command: '  '\n",
        "entry_points.main.command: the command is empty (line 3)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters: [a, b]\n",
        "entry_points.main.parameters: expected a mapping, got a list (line 4)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n      alpha: 0.5\n",
        "entry_points.main.parameters.alpha: expected a type name (e.g. `alpha: float`) or a "
        "mapping (e.g. `alpha: {type: float, default: 0.5}`), got 0.5 (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n      alpha:\n",
        "entry_points.main.parameters.alpha: expected a type name (e.g. `alpha: float`) or a "
        "mapping (e.g. `alpha: {type: float, default: 0.5}`), got nothing (null) (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n      alpha: number\n",
        "entry_points.main.parameters.alpha: unknown parameter type 'number'; "
        "valid types: string, float, int, path, uri, bool (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      alpha:\n        type: [float]\n",
        "entry_points.main.parameters.alpha.type: unknown parameter type ['float']; "
        "valid types: string, float, int, path, uri, bool (line 6)",
    ),
    (
        "entry_points:\n  train:\n    command: x\n    parameters:\n      lr:\n"
        "        type: float\n        default: abc\n",
        "entry_points.train.parameters.lr.default: expected float, got 'abc' (line 7)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      n: {type: int, default: 1.5}\n",
        "entry_points.main.parameters.n.default: expected int, got 1.5 (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      n: {type: int, default: true}\n",
        "entry_points.main.parameters.n.default: expected int, got True (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      flag: {type: bool, default: maybe}\n",
        "entry_points.main.parameters.flag.default: expected bool (true/false, yes/no, 1/0, "
        "on/off), got 'maybe' (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      u: {type: uri, default: data/x.csv}\n",
        "entry_points.main.parameters.u.default: expected a URI with a scheme (such as s3://, "
        "https://, file:///), got 'data/x.csv' (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      p: {type: path, default: ''}\n",
        "entry_points.main.parameters.p.default: expected a path, got '' (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      opt: {default: adam, choices: adam}\n",
        "entry_points.main.parameters.opt.choices: expected a non-empty list, got 'adam' (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n      opt: {choices: []}\n",
        "entry_points.main.parameters.opt.choices: expected a non-empty list, got a list (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      n:\n        type: int\n        choices:\n          - 1\n          - two\n",
        "entry_points.main.parameters.n.choices[1]: expected int, got 'two' (line 9)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      opt: {default: sgd, choices: [adam, rmsprop]}\n",
        "entry_points.main.parameters.opt.default: expected one of 'adam', 'rmsprop', "
        "got 'sgd' (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      lr: {type: float, min: 1, max: 0.5}\n",
        "entry_points.main.parameters.lr.min: min 1 is greater than max 0.5 (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      lr: {type: float, min: low}\n",
        "entry_points.main.parameters.lr.min: expected a number, got 'low' (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      lr: {type: float, default: 2.5, max: 1}\n",
        "entry_points.main.parameters.lr.default: expected a value <= 1, got 2.5 (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      n: {type: int, default: -1, min: 0}\n",
        "entry_points.main.parameters.n.default: expected a value >= 0, got -1 (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n"
        "      s: {type: string, max: 3}\n",
        "entry_points.main.parameters.s.max: min/max apply only to float and int parameters, "
        "not string (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n      s: {help: [a, b]}\n",
        "entry_points.main.parameters.s.help: expected a string, got a list (line 5)",
    ),
    (
        "entry_points:\n  main:\n    command: x\n    parameters:\n      1: float\n",
        "entry_points.main.parameters.1: parameter names must be text, got 1 (line 5)",
    ),
    (
        "entry_points:\n  7: {command: x}\n",
        "entry_points.7: entry point names must be text, got 7 (line 2)",
    ),
    (
        "conda_env: missing.yaml\n",
        "conda_env: file 'missing.yaml' not found (looked for {root}/missing.yaml); "
        "create it or fix the name (line 1)",
    ),
    (
        "name: x\npython_env: envs/py.yaml\n",
        "python_env: file 'envs/py.yaml' not found (looked for {root}/envs/py.yaml); "
        "create it or fix the name (line 2)",
    ),
    ("python_env: [a]\n", "python_env: expected a file name, got a list (line 1)"),
    (
        "docker_env: {image: x}\nconda_env: conda.yaml\n",
        "conda_env: a project declares at most one environment, but docker_env and conda_env "
        "are both set; keep one (line 2)",
    ),
    (
        "python_env: python_env.yaml\nconda_env: conda.yaml\n",
        "conda_env: a project declares at most one environment, but python_env and conda_env "
        "are both set; keep one (line 2)",
    ),
    ("docker_env: python:3.11\n", "docker_env: expected a mapping, got 'python:3.11' (line 1)"),
    (
        "docker_env:\n  volumes: []\n",
        "docker_env: expected a non-empty image name (e.g. `image: python:3.11-slim`), "
        "got nothing (null) (line 1)",
    ),
    (
        "docker_env:\n  image: ''\n",
        "docker_env.image: expected a non-empty image name (e.g. `image: python:3.11-slim`), "
        "got '' (line 2)",
    ),
    (
        "docker_env:\n  image: 3.11\n",
        "docker_env.image: expected a non-empty image name (e.g. `image: python:3.11-slim`), "
        "got 3.11 (line 2)",
    ),
    (
        "docker_env:\n  image: x\n  volumes: /a:/b\n",
        "docker_env.volumes: expected a list, got '/a:/b' (line 3)",
    ),
    (
        "docker_env:\n  image: x\n  volumes:\n    - /a:/a\n    - 5\n",
        'docker_env.volumes[1]: expected a string such as "/host/path:/container/path", '
        "got 5 (line 5)",
    ),
    (
        "docker_env:\n  image: x\n  environment: {A: b}\n",
        "docker_env.environment: expected a list, got a mapping (line 3)",
    ),
    (
        "docker_env:\n  image: x\n  environment:\n    - OK\n    - [ONLY_NAME]\n",
        'docker_env.environment[1]: expected "NAME" (copied from the host) or [NAME, value], '
        "got a list (line 5)",
    ),
    (
        "docker_env:\n  image: x\n  environment: [[A, b, c]]\n",
        'docker_env.environment[0]: expected "NAME" (copied from the host) or [NAME, value], '
        "got a list (line 3)",
    ),
    (
        "docker_env:\n  image: x\n  environment: [[1, b]]\n",
        'docker_env.environment[0]: expected "NAME" (copied from the host) or [NAME, value], '
        "got a list (line 3)",
    ),
    (
        "docker_env:\n  image: x\n  environment: [A=b]\n",
        'docker_env.environment[0]: expected "NAME" (copied from the host) or [NAME, value], '
        "got 'A=b' (line 3)",
    ),
    (
        "docker_env:\n  image: x\n  environment: [{A: b}]\n",
        'docker_env.environment[0]: expected "NAME" (copied from the host) or [NAME, value], '
        "got a mapping (line 3)",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), ERROR_CASES)
def test_spec_errors_name_file_key_value_and_line(tmp_path: Path, spec: str, expected: str) -> None:
    message = load_error(tmp_path, spec, "conda.yaml", "python_env.yaml")
    expected = expected.replace("{root}", str(tmp_path))
    assert message == f"{tmp_path / 'MLproject'}: {expected}"


def test_flow_style_errors_still_find_the_line(tmp_path: Path) -> None:
    spec = "# comment\n\nentry_points: {main: {command: x, parameters: {a: {type: int, default: z}}}}\n"
    message = load_error(tmp_path, spec)
    assert message.endswith(
        "entry_points.main.parameters.a.default: expected int, got 'z' (line 3)"
    )


def test_credentials_in_uri_defaults_are_hidden(tmp_path: Path) -> None:
    spec = "entry_points:\n  main:\n    command: x\n    parameters:\n"
    spec += "      u: {type: int, default: 'https://user:s3cret@host/x'}\n"
    message = load_error(tmp_path, spec)
    assert "s3cret" not in message
    assert "'https://***@host/x'" in message


WEIRD_DOCUMENTS = [
    "name: {a: 1}",
    "entry_points: 5",
    "entry_points: {main: null}",
    "entry_points: {main: []}",
    "entry_points: {main: {command: null}}",
    "entry_points: {main: {command: x, parameters: 5}}",
    "entry_points: {main: {command: x, parameters: {a: []}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: {x: 1}}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: float, default: [1]}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: float, default: {x: 1}}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: float, choices: {x: 1}}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: int, min: [1]}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: bool, default: 2}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: path, default: [a]}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: uri, default: 'http://[::1'}}}}",
    "entry_points: {main: {command: x, parameters: {a: {type: float, default: 1e999999}}}}",
    "entry_points: {main: {command: x, parameters: {? [a, b] : float}}}",
    "entry_points: {? [a] : {command: x}}",
    "docker_env: {image: [x]}",
    "docker_env: []",
    "docker_env: {image: x, environment: [[A, [b]]]}",
    "conda_env: {a: 1}",
    "databricks_spark_job: 5",
    "[unclosed",
    "a: &x [*x]",
    "!!python/object:os.system x",
    "entry_points: !!binary aGVsbG8=",
]


@pytest.mark.parametrize("text", WEIRD_DOCUMENTS)
def test_malformed_documents_raise_only_execution_exception(tmp_path: Path, text: str) -> None:
    """Never AttributeError / TypeError / KeyError: every input loads or raises our error."""
    write_project(tmp_path, text + "\n")
    try:
        load_project(tmp_path)
    except ExecutionException as exc:
        assert str(exc).startswith(str(tmp_path / "MLproject"))
