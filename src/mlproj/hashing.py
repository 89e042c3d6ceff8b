"""Digests of small data (keys, names, fingerprints) without loading OpenSSL.

``import hashlib`` loads libcrypto, about 2 ms on every mlproj start, for a few hundred bytes
of hashing. CPython's own SHA modules give the same digests and load in 0.1 ms. Large files
(datasets, archives) should still use ``hashlib``, whose OpenSSL code is several times faster.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


_constructors: dict[str, Callable[[], Digest]] = {}


def _builtin(modules: tuple[str, ...], name: str) -> Digest:
    constructor = _constructors.get(name)
    if constructor is None:
        for module in modules:
            try:
                constructor = getattr(importlib.import_module(module), name)
                break
            except ImportError:
                continue
        else:
            import hashlib  # an interpreter built without its own SHA modules

            def constructor() -> Digest:
                return hashlib.new(name, usedforsecurity=False)

        _constructors[name] = constructor
    return constructor()


def sha256(data: bytes = b"") -> Digest:
    """A SHA-256 object with ``update`` / ``digest`` / ``hexdigest``, like ``hashlib.sha256``."""
    digest = _builtin(("_sha2", "_sha256"), "sha256")  # Python 3.12+, then 3.10 and 3.11
    digest.update(data)
    return digest


def sha1_hex(data: bytes) -> str:
    """The hex SHA-1 of ``data`` (file names in the tag index; not for security)."""
    digest = _builtin(("_sha1",), "sha1")
    digest.update(data)
    return digest.hexdigest()
