"""Lazy package exports: a package names what it offers without importing it (and torch) until first use."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a name to the (relative) module defining it."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            module = exports[name]
            return getattr(import_module(module if module.startswith(".") else f".{module}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
