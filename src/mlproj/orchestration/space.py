"""Sweep search spaces: what ``-P name=SPEC`` and a sweep file's ``parameters`` mean.

``-P lr=0.1,0.01`` or ``-P depth=[2,4,8]``: a list of values (a grid axis; a choice for random
and optuna). ``range(1,10[,step])``: integers from 1 to 9. ``uniform(0,1)``, ``loguniform(1e-5,
1e-1)``, ``int_uniform(1,10)`` (both ends included): distributions, for random and optuna.
``choice(a,b)``: a list. Anything else is one fixed value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlproj.errors import ExecutionException
from mlproj.records import record

if TYPE_CHECKING:
    import random


@record(frozen=True)
class Values:
    """A finite list of values, as the text the command receives."""

    values: tuple[str, ...]

    def spec(self) -> dict[str, Any]:
        return {"values": list(self.values)}


@record(frozen=True)
class IntRange:
    """``range(start, stop, step)`` as Python means it (``stop`` excluded)."""

    start: int
    stop: int
    step: int = 1

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(str(v) for v in range(self.start, self.stop, self.step))

    def spec(self) -> dict[str, Any]:
        return {"range": [self.start, self.stop, self.step]}


@record(frozen=True)
class Uniform:
    """A float drawn from [low, high]; ``log`` draws its logarithm uniformly instead."""

    low: float
    high: float
    log: bool = False

    def spec(self) -> dict[str, Any]:
        return {
            "distribution": "log_uniform_values" if self.log else "uniform",
            "min": self.low,
            "max": self.high,
        }


@record(frozen=True)
class IntUniform:
    """An integer drawn from [low, high], both included."""

    low: int
    high: int

    def spec(self) -> dict[str, Any]:
        return {"distribution": "int_uniform", "min": self.low, "max": self.high}


Dimension = Values | IntRange | Uniform | IntUniform

_CALL = re.compile(r"^\s*(?P<name>[a-z_]+)\s*\((?P<args>.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def value_text(value: object) -> str:
    """A YAML or Python value as the text a command receives (``true`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_dimension(name: str, text: str, where: str = "-P") -> Dimension:
    """One ``-P name=SPEC`` value (see the module docstring)."""
    stripped = text.strip()
    call = _CALL.match(stripped)
    if call is not None:
        func = call["name"].lower()
        args = [a.strip() for a in call["args"].split(",")] if call["args"].strip() else []
        return _from_call(name, func, args, f"{where} {name}={text}")
    if stripped.startswith("[") and stripped.endswith("]"):
        items = [a.strip() for a in stripped[1:-1].split(",")]
        return _values(name, items, f"{where} {name}={text}")
    if "," in text:
        return _values(name, [a.strip() for a in text.split(",")], f"{where} {name}={text}")
    return Values((text,))


def _values(name: str, items: list[str], where: str) -> Values:
    if not items or any(item == "" for item in items):
        raise ExecutionException(f"{where}: empty value in the list of {name!r}")
    return Values(tuple(items))


def _numbers(args: list[str], count: int, where: str, kind: type[float] | type[int]) -> list[Any]:
    if len(args) != count:
        raise ExecutionException(f"{where}: expected {count} arguments, got {len(args)}")
    try:
        return [kind(a) for a in args]
    except ValueError:
        wanted = "integers" if kind is int else "numbers"
        raise ExecutionException(f"{where}: the arguments must be {wanted}") from None


def _from_call(name: str, func: str, args: list[str], where: str) -> Dimension:
    if func == "range":
        if len(args) not in (1, 2, 3):
            raise ExecutionException(f"{where}: range takes 1 to 3 integers")
        bounds = _numbers(args, len(args), where, int)
        start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds[:2], 1)
        if len(bounds) == 3:
            step = bounds[2]
        if step == 0 or not range(start, stop, step):
            raise ExecutionException(f"{where}: the range is empty")
        return IntRange(start, stop, step)
    if func in ("uniform", "loguniform", "log_uniform"):
        low, high = _numbers(args, 2, where, float)
        return checked_uniform(low, high, log=func != "uniform", where=where)
    if func in ("int_uniform", "randint"):
        low, high = _numbers(args, 2, where, int)
        if low > high:
            raise ExecutionException(f"{where}: min {low} is above max {high}")
        return IntUniform(low, high)
    if func == "choice":
        return _values(name, args, where)
    raise ExecutionException(
        f"{where}: unknown function {func!r}; use range, uniform, loguniform, int_uniform or "
        "choice, or a list a,b,c"
    )


def checked_uniform(low: float, high: float, *, log: bool, where: str) -> Uniform:
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ExecutionException(f"{where}: expected finite min < max, got {low:g} and {high:g}")
    if log and low <= 0:
        raise ExecutionException(f"{where}: a log-uniform range must be above 0, got {low:g}")
    return Uniform(low, high, log=log)


# W&B sweep-file distributions -> ours.
def parse_wandb_parameter(name: str, decl: object, where: str) -> Dimension:
    """One entry of a sweep file's ``parameters`` in W&B's shape: ``value``, ``values``, or
    ``distribution`` with ``min``/``max`` (uniform, log_uniform_values, log_uniform,
    int_uniform, categorical, constant)."""
    at = f"{where}: parameters.{name}"
    if not isinstance(decl, Mapping):
        if isinstance(decl, list):
            return _values(name, [value_text(v) for v in decl], at)
        return Values((value_text(decl),))
    if "value" in decl:
        return Values((value_text(decl["value"]),))
    distribution = str(decl.get("distribution", "categorical" if "values" in decl else ""))
    if distribution in ("categorical", "") and "values" in decl:
        values = decl["values"]
        if not isinstance(values, list) or not values:
            raise ExecutionException(f"{at}.values: expected a non-empty list, got {values!r}")
        return _values(name, [value_text(v) for v in values], at)
    if distribution == "constant":
        return Values((value_text(decl.get("value")),))
    return _distribution(decl, distribution, at)


def _distribution(decl: Mapping[str, Any], distribution: str, at: str) -> Dimension:
    if "min" not in decl or "max" not in decl:
        raise ExecutionException(f"{at}: give value, values, or a distribution with min and max")
    low, high = decl["min"], decl["max"]
    try:
        if distribution == "int_uniform":
            if int(low) > int(high):
                raise ExecutionException(f"{at}: min {low} is above max {high}")
            return IntUniform(int(low), int(high))
        if distribution == "uniform":
            return checked_uniform(float(low), float(high), log=False, where=at)
        if distribution == "log_uniform_values":
            return checked_uniform(float(low), float(high), log=True, where=at)
        if distribution == "log_uniform":  # W&B: min and max are natural-log exponents
            return checked_uniform(math.exp(float(low)), math.exp(float(high)), log=True, where=at)
    except (TypeError, ValueError):
        raise ExecutionException(
            f"{at}: min and max must be numbers, got {low!r}, {high!r}"
        ) from None
    raise ExecutionException(
        f"{at}.distribution: {distribution!r} is not supported; use categorical, constant, "
        "uniform, int_uniform, log_uniform_values or log_uniform"
    )


def dimension_from_spec(name: str, spec: Mapping[str, Any]) -> Dimension:
    """The inverse of ``Dimension.spec()`` (a stored sweep, read back on resume)."""
    if "range" in spec:
        return IntRange(*[int(v) for v in spec["range"]])
    return parse_wandb_parameter(name, spec, "stored sweep")


def sample(dimension: Dimension, rng: random.Random) -> str:
    """One random value of ``dimension``, as text."""
    if isinstance(dimension, Values):
        return rng.choice(dimension.values)
    if isinstance(dimension, IntRange):
        return str(rng.choice(range(dimension.start, dimension.stop, dimension.step)))
    if isinstance(dimension, IntUniform):
        return str(rng.randint(dimension.low, dimension.high))
    if dimension.log:
        return repr(math.exp(rng.uniform(math.log(dimension.low), math.log(dimension.high))))
    return repr(rng.uniform(dimension.low, dimension.high))


def grid_values(name: str, dimension: Dimension) -> tuple[str, ...]:
    if isinstance(dimension, (Values, IntRange)):
        return dimension.values
    raise ExecutionException(
        f"Parameter {name!r} is a distribution ({dimension.spec()['distribution']}); a grid "
        "needs lists or ranges: use --method random or optuna"
    )
