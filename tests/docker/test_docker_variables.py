"""docker_env ``environment`` items resolved against the host (pure functions)."""

from __future__ import annotations

import pytest

from mlproj.docker.variables import (
    check_host_variables,
    container_variables,
    missing_host_variables,
)
from mlproj.errors import ExecutionException


def test_copied_and_set_variables_in_declaration_order() -> None:
    items = ("FROM_HOST", ("SET", "v"), ("FROM_HOST_2", "overridden"))
    host = {"FROM_HOST": "h", "FROM_HOST_2": "ignored"}
    assert container_variables(items, host) == {
        "FROM_HOST": "h",
        "SET": "v",
        "FROM_HOST_2": "overridden",
    }


def test_missing_variables_are_all_named_in_one_line() -> None:
    items = ("A_ABSENT", ("B", "x"), "C_ABSENT", "PRESENT")
    host = {"PRESENT": "1"}
    assert missing_host_variables(items, host) == ["A_ABSENT", "C_ABSENT"]
    with pytest.raises(ExecutionException) as info:
        container_variables(items, host, where="/p/MLproject")
    message = str(info.value)
    assert message.startswith(
        "/p/MLproject: docker_env.environment: A_ABSENT, C_ABSENT are not set"
    )
    assert '["A_ABSENT", "value"]' in message and "\n" not in message
    with pytest.raises(ExecutionException, match="ONE is not set on this machine; export it"):
        check_host_variables(("ONE",), {})
    check_host_variables((("ONE", "1"),), {})
