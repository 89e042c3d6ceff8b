"""Random, readable run names (``adjective-noun-NNN``) for runs created without one.

MLflow gives every run such a name and shows it in its UI; the file store writes it to both
``meta.yaml`` and the ``mlflow.runName`` tag. Names are at most 20 characters: adjectives have
at most 8 letters, nouns at most 7, and the number at most 3 digits (8 + 1 + 7 + 1 + 3).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

__all__ = ["MAX_RUN_NAME_LENGTH", "random_run_name"]

MAX_RUN_NAME_LENGTH = 20

_ADJECTIVES: tuple[str, ...] = (
    "amber", "ample", "arctic", "azure", "balmy", "bold", "breezy", "bright", "brisk", "calm",
    "candid", "cheery", "civil", "clever", "cosmic", "crisp", "daring", "dapper", "deft",
    "dusky", "eager", "early", "earnest", "elated", "fabled", "fancy", "fluent", "frosty",
    "gentle", "gilded", "glossy", "golden", "grand", "hardy", "hazel", "honest", "humble",
    "jovial", "keen", "kindly", "lively", "lucid", "lunar", "mellow", "merry", "misty",
    "modest", "nimble", "noble", "olive", "patient", "placid", "plucky", "polite", "quick",
    "quiet", "radiant", "rapid", "rustic", "sandy", "serene", "silver", "smooth", "snowy",
    "solar", "steady", "stellar", "sturdy", "sunny", "swift", "tidy", "tranquil", "upbeat",
    "valiant", "velvet", "vivid", "warm", "wise", "witty", "zesty",
)  # fmt: skip

_NOUNS: tuple[str, ...] = (
    "acorn", "anchor", "aspen", "badger", "basin", "beacon", "birch", "bison", "brook",
    "canyon", "cedar", "comet", "compass", "coral", "cove", "crane", "delta", "dune", "eagle",
    "ember", "falcon", "fern", "fjord", "garnet", "geyser", "glacier", "grove", "harbor",
    "heron", "island", "jasper", "kestrel", "lagoon", "lantern", "larch", "lynx", "maple",
    "marten", "meadow", "mesa", "nebula", "orchid", "osprey", "otter", "pebble", "pine",
    "plover", "prairie", "quartz", "raven", "reef", "ridge", "river", "sequoia", "sparrow",
    "spruce", "summit", "thicket", "tundra", "valley", "walrus", "willow", "wren", "zephyr",
)  # fmt: skip


def random_run_name(rng: random.Random | None = None) -> str:
    """A name like ``brisk-heron-417``; pass ``rng`` for reproducible names in tests."""
    if rng is not None:
        number = rng.randint(0, 999)
        return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{number}"
    # os.urandom, not the random module: its import costs every run 1 ms, for three picks
    # whose tiny modulo bias does not matter in a name.
    picks = os.urandom(6)
    adjective, noun, number = (int.from_bytes(picks[i : i + 2], "big") for i in (0, 2, 4))
    return (
        f"{_ADJECTIVES[adjective % len(_ADJECTIVES)]}-{_NOUNS[noun % len(_NOUNS)]}-{number % 1000}"
    )
