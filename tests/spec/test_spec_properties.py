"""Property-based tests of the MLproject loader, parameter checks and command rendering.

Whatever a person (or a broken editor, or an attacker) writes into an MLproject file or passes
as a parameter, the only error that comes out is an ExecutionException with a message, and a
rendered value always reaches the shell as exactly one word that gives the value back.
Together these tests generate more than 10,000 documents and values per run: each counts the
examples it really ran, and the module checks the total once all four have run.
"""

from __future__ import annotations

import shlex
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlproj.errors import ExecutionException
from mlproj.spec.params import render_command, resolve_parameters
from mlproj.spec.project import EntryPoint, Parameter, load_project


def examples(count: int) -> settings:
    """``count`` generated examples, no per-example deadline (2-core CI machines), and no
    example database written into the work tree."""
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


TYPE_NAMES = ["string", "str", "float", "int", "bool", "boolean", "path", "uri", "list[int]", "x"]
KEYS = ["type", "default", "choices", "min", "max", "help", "defulat", "comand", "command"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(TYPE_NAMES),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), children, max_size=4
        ),
    ),
    max_leaves=12,
)
parameter_decls = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(TYPE_NAMES), values),
            "default": values,
            "choices": values,
            "min": values,
            "max": values,
        },
    ),
)
commands = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["python x.py", "{a}", "{b}", "{", "}", "{{", "}}", "--c {c}"])).map(
        " ".join
    ),
    values,
)
entry_points = st.fixed_dictionaries(
    {},
    optional={
        "command": commands,
        "parameters": st.one_of(
            values, st.dictionaries(st.sampled_from(["a", "b", "c", "d e", ""]), parameter_decls)
        ),
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "name": values,
        "entry_points": st.one_of(
            values, st.dictionaries(st.sampled_from(["main", "train", "x.py", ""]), entry_points)
        ),
        "python_env": values,
        "conda_env": values,
        "docker_env": st.one_of(values, st.fixed_dictionaries({"image": values})),
    },
)


# The floor: generated documents and values per CI run, all four tests together.
EXAMPLES_PER_RUN = 10_000
ran: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _examples_floor() -> Iterator[None]:
    """Once the module's tests have run (all four: ``-k`` may pick fewer), the examples they
    ran reach the floor: a lower max_examples or a hypothesis profile cannot cut it silently."""
    yield
    if len(ran) == 4:
        total = sum(ran.values())
        assert total >= EXAMPLES_PER_RUN, f"only {total} generated examples ran: {dict(ran)}"


@pytest.fixture(scope="module")
def project_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _dump(document: object) -> str:
    return yaml.safe_dump(document, allow_unicode=True)


def _mutate(text: str, data: st.DataObject) -> str:
    """Cut, splice or corrupt the YAML text the way a bad edit or a power cut does."""
    if not text:
        return text
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    kind = data.draw(st.sampled_from(["truncate", "insert", "none"]))
    if kind == "truncate":
        return text[:cut]
    if kind == "insert":
        junk = data.draw(
            st.sampled_from(
                [
                    "\t",
                    ":",
                    "{",
                    "- ",
                    "\x00",
                    "\r\n",
                    "&a",
                    "*a",
                    "!!python/object:os.system",
                    "\ufeff",
                    "é",
                ]
            )
        )
        return text[:cut] + junk + text[cut:]
    return text


def _exercise(project_dir: Path, raw: bytes, params: dict[str, object]) -> None:
    """Load the file, then resolve and render every entry point it has."""
    (project_dir / "MLproject").write_bytes(raw)
    try:
        project = load_project(project_dir)
    except ExecutionException as exc:
        assert str(exc).strip(), "an error without a message"
        return
    for name in list(project.entry_points):
        try:
            entry = project.get_entry_point(name)
            resolved = resolve_parameters(entry, params, project_dir=project_dir, cwd=project_dir)
            command = render_command(entry, resolved)
        except ExecutionException as exc:
            assert str(exc).strip(), "an error without a message"
            continue
        assert isinstance(command, str)


@examples(4000)
@given(document=documents, data=st.data())
def test_any_document_loads_or_fails_with_a_message(
    project_dir: Path, document: object, data: st.DataObject
) -> None:
    text = _mutate(_dump(document), data)
    params = data.draw(st.dictionaries(st.sampled_from(["a", "b", "c", "zz"]), scalars, max_size=3))
    ran["documents"] += 1  # counted once every draw succeeded (hypothesis drops the others)
    _exercise(project_dir, text.encode("utf-8", "surrogatepass"), params)


@examples(1500)
@given(raw=st.binary(max_size=300))
def test_any_bytes_load_or_fail_with_a_message(project_dir: Path, raw: bytes) -> None:
    ran["bytes"] += 1
    _exercise(project_dir, raw, {})


@examples(2500)
@given(
    param_type=st.sampled_from(["string", "float", "int", "bool", "uri", "path"]),
    default=scalars,
    value=st.one_of(scalars, st.lists(scalars, max_size=2)),
)
def test_any_value_is_checked_or_refused_with_a_message(
    project_dir: Path, param_type: str, default: object, value: object
) -> None:
    ran["values"] += 1
    decl: dict[str, object] = {"type": param_type}
    if default is not None:
        decl["default"] = default
    document = {"entry_points": {"main": {"parameters": {"p": decl}, "command": "echo {p}"}}}
    _exercise(project_dir, _dump(document).encode(), {"p": value})


# Text a value may hold: anything MLflow can store (no NUL; control characters, quotes,
# braces, newlines, non-ASCII and shell syntax all included).
shell_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=80
)


@examples(2500)
@given(
    value=shell_text,
    extra_key=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True),
    extra=shell_text,
)
def test_a_rendered_value_is_one_shell_word_that_gives_the_value_back(
    project_dir: Path, value: str, extra_key: str, extra: str
) -> None:
    ran["rendered"] += 1
    entry = EntryPoint(
        name="main",
        command="echo {p}",
        parameters={"p": Parameter(name="p", type="string", default=None)},
    )
    params: dict[str, object] = {"p": value}
    if extra_key != "p":
        params[extra_key] = extra
    try:
        resolved = resolve_parameters(entry, params, project_dir=project_dir, cwd=project_dir)
    except ExecutionException as exc:  # e.g. over MLflow's length limits
        assert str(exc).strip()
        return
    words = shlex.split(render_command(entry, resolved))
    expected = ["echo", value] + ([f"--{extra_key}", extra] if extra_key != "p" else [])
    assert words == expected
