"""conda.yaml converted for a Python virtual environment when conda itself is not used.

MLflow keeps only python, pip/setuptools/wheel and the ``pip:`` list and drops every other
conda package. Here the other packages are tried from PyPI under the same name (conda pins
translated to pip syntax); only those that fail to install are dropped, and each is named.
Packages that are known to be native libraries, never Python packages, are dropped without a
try (several of those names exist on PyPI as unrelated projects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj.envs.python.pyspec import PythonEnvSpec, read_yaml_file
from mlproj.errors import ExecutionException

# Native / runtime packages that `conda env export` lists; not installable from PyPI as-is.
NATIVE_ONLY = frozenset(
    {
        "_libgcc_mutex", "_openmp_mutex", "blas", "bzip2", "ca-certificates", "cudatoolkit",
        "cudnn", "icu", "intel-openmp", "krb5", "ld_impl_linux-64", "libblas", "libcblas",
        "libcxx", "libexpat", "libffi", "libgcc", "libgcc-ng", "libgfortran", "libgfortran-ng",
        "libgfortran5", "libgomp", "liblapack", "liblzma", "libmpdec", "libnsl", "libopenblas",
        "libsqlite", "libstdcxx", "libstdcxx-ng", "libuuid", "libxcrypt", "libzlib", "mkl",
        "mkl-service", "mkl_fft", "mkl_random", "ncurses", "nomkl", "openblas", "openssl",
        "readline", "sqlite", "tk", "tzdata", "vc", "vs2015_runtime", "xz", "zlib", "zstd",
    }
)  # fmt: skip
# conda package names whose PyPI project has another name.
PYPI_NAMES = {
    "pytorch": "torch",
    "py-xgboost": "xgboost",
    "python-graphviz": "graphviz",
    "pytables": "tables",
    "msgpack-python": "msgpack",
}
_SPECIAL = ("python", "pip", "setuptools", "wheel")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SPLIT = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)\s*(.*)$")


@dataclass(frozen=True)
class ConvertedConda:
    spec: PythonEnvSpec
    dropped: tuple[str, ...]  # conda entries dropped without trying (native packages)


def convert_conda_file(path: Path) -> ConvertedConda:
    _, data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ExecutionException(f"{path}: expected a conda environment mapping")
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise ExecutionException(f"{path}: dependencies: expected a list, got {deps!r}")
    return convert_conda_dependencies(path, deps)


def convert_conda_dependencies(path: Path, deps: list[Any]) -> ConvertedConda:
    python: str | None = None
    python_seen = False
    build: list[str] = []
    pip_lines: list[str] = []
    optional: list[str] = []
    dropped: list[str] = []
    for item in deps:
        if isinstance(item, dict):
            pip_lines.extend(_pip_section(path, item))
            continue
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ExecutionException(
                f"{path}: dependencies: invalid entry {item!r}; use a package string or "
                "{pip: [...]}"
            )
        text = str(item).strip()
        name, constraint = _split(text)
        if name is None:
            dropped.append(text)
            continue
        if name == "python":
            if not python_seen:
                python_seen = True
                python = _python_request(path, text, constraint)
            continue
        if name in _SPECIAL:
            build.append(name + to_pip_constraint(constraint))
            continue
        if name in NATIVE_ONLY or not _NAME.match(name):
            dropped.append(text)
            continue
        optional.append(PYPI_NAMES.get(name, name) + to_pip_constraint(constraint))
    spec = PythonEnvSpec(
        python=python,
        build_dependencies=tuple(build),
        dependencies=tuple(pip_lines),
        optional_dependencies=tuple(optional),
        source=str(path),
    )
    return ConvertedConda(spec=spec, dropped=tuple(dropped))


def _pip_section(path: Path, item: dict[Any, Any]) -> list[str]:
    if set(item) != {"pip"} or not isinstance(item["pip"], list):
        raise ExecutionException(
            f"{path}: dependencies: invalid entry {item!r}; the only mapping allowed is "
            "{pip: [requirement, ...]}"
        )
    return [str(line).strip() for line in item["pip"] if str(line).strip()]


def _split(text: str) -> tuple[str | None, str]:
    """``channel::name[ version[ build]]`` or ``name<op>version[=build]`` -> (name, rest)."""
    if "::" in text:
        text = text.split("::", 1)[1]
    match = _SPLIT.match(text)
    if match is None:
        return None, ""
    return match.group(1).lower(), match.group(2).strip()


def to_pip_constraint(constraint: str) -> str:
    """A conda version constraint in pip syntax: ``=1.2`` (conda: 1.2.*) -> ``==1.2.*``,
    ``==1.2`` stays, ``>=1,<2`` stays, a build string (``=1.2=py310_0``) is dropped."""
    text = constraint.strip()
    if not text:
        return ""
    text = text.split(maxsplit=1)[0]  # "1.26 py310_0": the build string is conda's business
    if text[0].isdigit():
        text = "=" + text  # "numpy 1.26" means numpy=1.26
    if text.startswith("=") and not text.startswith("=="):
        version = text[1:].split("=", 1)[0].rstrip("*").rstrip(".")
        return f"=={version}.*" if version else ""
    if text.startswith("==") and text.count("=") > 2:
        text = text[: text.index("=", 2)]  # "==1.2=build" -> "==1.2"
    if text.endswith("*") and not text.endswith(".*"):
        text = text[:-1] + ".*"
    return text


def _python_request(path: Path, text: str, constraint: str) -> str | None:
    if not constraint:
        return None  # MLflow refuses an unpinned python; any interpreter is as good
    if constraint.startswith("=") and not constraint.startswith("=="):
        return constraint[1:].split("=", 1)[0].rstrip("*").rstrip(".") or None
    if constraint.startswith("==") and "*" not in constraint and "," not in constraint:
        return constraint[2:].split("=", 1)[0]
    if re.match(r"^[0-9]", constraint):
        return constraint.split(maxsplit=1)[0]
    if not re.match(r"^(==|!=|<=|>=|<|>|~=)", constraint):
        raise ExecutionException(f"{path}: dependencies: cannot read the python pin {text!r}")
    return constraint.replace(" ", "")
