"""Search spaces (-P specs and W&B-shaped sweep files), trial draws and the retry backoff."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.orchestration.retry import RetryPolicy
from mlproj.orchestration.space import (
    IntRange,
    IntUniform,
    Uniform,
    Values,
    parse_dimension,
    parse_wandb_parameter,
)
from mlproj.orchestration.sweeps import SweepSpec, load_sweep_file, trial_params


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1,0.01", Values(("0.1", "0.01"))),
        ("[2, 4,8]", Values(("2", "4", "8"))),
        ("choice(a,b)", Values(("a", "b"))),
        ("range(1,10)", IntRange(1, 10)),
        ("range(5)", IntRange(0, 5)),
        ("range(0,10,5)", IntRange(0, 10, 5)),
        ("uniform(0,1)", Uniform(0.0, 1.0)),
        ("loguniform(1e-5,1e-1)", Uniform(1e-5, 1e-1, log=True)),
        ("int_uniform(1,9)", IntUniform(1, 9)),
        ("adam", Values(("adam",))),
    ],
)
def test_cli_specs(text: str, expected: object) -> None:
    assert parse_dimension("p", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("range(3,1)", "empty"),
        ("uniform(1,0)", "min < max"),
        ("loguniform(0,1)", "above 0"),
        ("uniform(a,b)", "numbers"),
        ("normal(0,1)", "unknown function 'normal'"),
        ("1,,2", "empty value"),
    ],
)
def test_bad_cli_specs_name_the_option(text: str, message: str) -> None:
    with pytest.raises(ExecutionException) as caught:
        parse_dimension("lr", text)
    assert message in str(caught.value)
    assert f"-P lr={text}" in str(caught.value)


def test_wandb_parameters() -> None:
    assert parse_wandb_parameter("a", {"values": [1, True]}, "f") == Values(("1", "true"))
    assert parse_wandb_parameter("a", {"value": 3}, "f") == Values(("3",))
    assert parse_wandb_parameter("a", {"distribution": "int_uniform", "min": 1, "max": 4}, "f") == (
        IntUniform(1, 4)
    )
    log = parse_wandb_parameter("a", {"distribution": "log_uniform", "min": 0, "max": 1}, "f")
    assert isinstance(log, Uniform) and log.log and log.high == pytest.approx(math.e)
    with pytest.raises(ExecutionException, match=r"f: parameters.a.distribution: 'beta'"):
        parse_wandb_parameter("a", {"distribution": "beta", "min": 0, "max": 1}, "f")


def test_sweep_file_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("method: grid\nrun_cap: many\n")
    with pytest.raises(ExecutionException, match=r"sweep.yaml: run_cap: expected an integer"):
        load_sweep_file(path)
    path.write_text("metod: grid\n")
    with pytest.raises(ExecutionException, match=r"unknown key 'metod'"):
        load_sweep_file(path)
    path.write_text("method: bayes\nmetric: {name: acc, goal: maximize}\nparameters: {}\n")
    assert load_sweep_file(path) == {
        "method": "optuna",
        "metric": "acc",
        "goal": "maximize",
        "parameters": {},
    }


def test_grid_order_and_deterministic_random_draws() -> None:
    grid = SweepSpec(uri=".", parameters={"a": Values(("1", "2")), "b": IntRange(0, 3)})
    assert grid.total == 6
    assert [trial_params(grid, n) for n in (0, 1, 5)] == [
        {"a": "1", "b": "0"},
        {"a": "1", "b": "1"},
        {"a": "2", "b": "2"},
    ]
    space = {"x": Uniform(0, 1), "k": IntUniform(1, 3)}
    one = SweepSpec(uri=".", method="random", parameters=space, seed=4, max_runs=5)
    other = SweepSpec(uri=".", method="random", parameters=space, seed=5, max_runs=5)
    assert trial_params(one, 3) == trial_params(one, 3)
    assert trial_params(one, 3) != trial_params(other, 3)
    assert SweepSpec.from_json(one.to_json()) == one


def test_retry_backoff_doubles_up_to_a_cap() -> None:
    policy = RetryPolicy(retries=5, delay=2.0, max_delay=10.0)
    assert [policy.wait_before(a) for a in (2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0]


def test_grid_trial_numbers_follow_the_product_of_the_axes() -> None:
    import itertools

    from mlproj.orchestration.sweeps import SweepSpec, parse_cli_parameters, trial_params

    spec = SweepSpec(
        uri=".", parameters=parse_cli_parameters({"a": "1,2,3", "b": "[x,y]", "c": "range(0,4)"})
    )
    axes = [["1", "2", "3"], ["x", "y"], ["0", "1", "2", "3"]]
    expected = [dict(zip("abc", point, strict=True)) for point in itertools.product(*axes)]
    assert [trial_params(spec, n) for n in range(24)] == expected
    assert [trial_params(spec, n, axes) for n in range(24)] == expected
