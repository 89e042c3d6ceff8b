"""What the tests run is the declared environment, not the machine's Python (issue 18, item 1):
.ci/run makes a venv from the declared dependencies only and runs everything from it."""

from __future__ import annotations

import os
import shutil
import site
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_site_packages_from_outside_the_test_environment() -> None:
    outside = [p for p in sys.path if "-packages" in p and not p.startswith(sys.prefix + "/")]
    assert outside == [], "the tests see packages of another Python (system site-packages?)"
    assert not site.ENABLE_USER_SITE  # no ~/.local packages either
    assert "PYTHONPATH" not in os.environ


def test_python_on_path_is_the_test_environment() -> None:
    """Projects' ``python ...`` commands (``--env-manager local``) must run in this environment:
    its bin/ comes first on PATH, as .ci/run and an activated venv put it."""
    for name in ("python", "python3"):
        found = shutil.which(name)
        assert found is not None and Path(found).parent == Path(sys.executable).parent, (
            f"`{name}` on PATH is {found}, not this environment's ({sys.executable}): activate "
            "the venv (or run bash .ci/run) before running the tests"
        )


def test_ci_builds_its_own_venv_and_checks_it() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python3 -m venv "$venv"' in script and "--system-site-packages" not in script
    assert "-e '.[test]'" in script  # the declared extras, nothing else
    assert "unset PYTHONPATH" in script and "assert not outside" in script
    assert "DPkg::Lock::Timeout" in script  # apt waits for the dpkg lock
