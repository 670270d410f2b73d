"""Lazy re-exports for package ``__init__`` files (docs/architecture.md, PEP 562).

A package whose public names include heavy modules (the torch-model exporter, checkpoint readers, the
compiler) lists them in a table of strings, public name -> module; the module is imported on first access
of the name. Importing the package therefore stays cheap, and the import graph that lint-imports checks has
no edge from the package to those modules (strings are not imports).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str],
                 public: Iterable[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``(__getattr__, __dir__)`` of ``package`` (its ``__name__``).

    ``table`` maps each lazy public name to the module that defines it, absolute or relative to
    ``package`` (``".export"``); ``public`` is the package's ``__all__`` (the names it imports normally and
    the lazy ones), which ``dir()`` lists. A lazy name missing from ``public`` is a ValueError."""
    names = MappingProxyType(dict(table))
    listed = sorted(public)
    unlisted = sorted(set(names) - set(listed))
    if unlisted:
        raise ValueError(f"{package}: lazy names {unlisted} are missing from __all__; add them there")

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}; its public names are "
                                 f"{', '.join(listed)}")
        return getattr(importlib.import_module(names[name], package), name)

    def __dir__() -> list[str]:
        return list(listed)

    return __getattr__, __dir__
