"""Make lava-nc 0.10.0 importable on Python 3.11, without touching site-packages.

Why: `lava/magma/compiler/var_model.py` declares the plain (unhashable) dataclass `ByteEncoder` and then
uses `ByteEncoder()` instances as field defaults of `CoreEncoder`, `ChipEncoder` and `AxonEncoder`. Since
Python 3.11 `dataclasses` rejects unhashable defaults, so importing the Lava compiler raises
``ValueError: mutable default <class ...ByteEncoder> ... use default_factory``. Nothing in Lava mutates a
`ByteEncoder`, so declaring it ``@dataclass(frozen=True)`` (hashable) is the whole fix. All Lava
repositories are archived: the fix will not come from upstream, so the project carries it here.

How: `ensure_lava_importable()` puts a finder in front of `sys.meta_path` that intercepts only
``lava.magma.compiler.var_model``. When that module's source contains the known broken declaration, the
finder serves a loader that compiles the source with that one declaration made frozen, under the original
file name (tracebacks and `inspect` still point at the real file). Any other source (a fixed Lava, a
different version) is left to the normal import machinery. Nothing happens when this module is imported;
only calling `ensure_lava_importable()` installs the hook. Lava's runtime forks its worker processes on
Linux, so they inherit the patched module from the parent.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from collections.abc import Sequence
from types import CodeType, ModuleType

__all__ = ["ensure_lava_importable", "lava_version"]

_DISTRIBUTION = "lava-nc"
_TARGET_MODULE = "lava.magma.compiler.var_model"
_BROKEN_DECLARATION = "@dataclass\nclass ByteEncoder:"
_FIXED_DECLARATION = "@dataclass(frozen=True)\nclass ByteEncoder:"
_INSTALL_HINT = (
    "lava-nc is not installed. Run `make test` (it calls .ci/bootstrap.sh), or install it by hand with "
    "`pip install --no-deps --ignore-requires-python lava-nc==0.10.0` after its run-time needs "
    "(see the `lava` extra in pyproject.toml)."
)


class _PatchedSourceLoader(importlib.machinery.SourceFileLoader):
    """Source loader that compiles a given (patched) source instead of the file's bytes or its .pyc.

    The .pyc cache is bypassed on purpose: the cached bytecode holds the unpatched code, and writing the
    patched bytecode back would change site-packages for every other interpreter too.
    """

    def __init__(self, fullname: str, path: str, source: str) -> None:
        super().__init__(fullname, path)
        self._source = source

    def get_source(self, fullname: str) -> str:
        return self._source

    def get_code(self, fullname: str) -> CodeType:
        return compile(self._source, self.get_filename(fullname), "exec", dont_inherit=True)


class _ByteEncoderFixFinder(importlib.abc.MetaPathFinder):
    """Meta path finder that serves `lava.magma.compiler.var_model` with `ByteEncoder` made frozen."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET_MODULE:
            return None
        spec = self._find_original_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        source = spec.loader.get_source(fullname)
        if source is None or _BROKEN_DECLARATION not in source:
            return None  # Unknown or already fixed source: let the normal import run untouched.
        # Same number of lines before and after: line numbers in tracebacks stay those of the file.
        patched = source.replace(_BROKEN_DECLARATION, _FIXED_DECLARATION, 1)
        spec.loader = _PatchedSourceLoader(fullname, spec.origin, patched)
        spec.cached = None  # The module was not built from the cached .pyc.
        return spec

    def _find_original_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def _hook_installed() -> bool:
    # Compared by name, not isinstance, so that a reloaded copy of this module still sees its old finder.
    return any(type(finder).__name__ == _ByteEncoderFixFinder.__name__ for finder in sys.meta_path)


def lava_version() -> str:
    """Version string of the installed lava-nc distribution, e.g. ``"0.10.0"``.

    Raises ImportError (with install instructions) when lava-nc is not installed.
    """
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise ImportError(_INSTALL_HINT, name="lava") from error


def ensure_lava_importable() -> None:
    """Make ``import lava...`` work on this interpreter; call before the first Lava import.

    Idempotent: the import hook is installed at most once per interpreter. A no-op on Python < 3.11
    (lava imports as is) and when `lava.magma.compiler.var_model` is already imported and sound.

    Raises:
        ImportError: lava-nc is not installed (the message says how to install it), or
            `lava.magma.compiler.var_model` sits in `sys.modules` in a state this hook cannot repair.
    """
    loaded = sys.modules.get(_TARGET_MODULE)
    if loaded is not None:
        # A failed import removes the module from sys.modules, so a module found here ran to the end
        # (then it is sound) unless it is half-initialised (ensure_lava_importable() called while Lava
        # itself is being imported) or was replaced by someone else.
        if getattr(loaded, "CoreEncoder", None) is None:
            raise ImportError(
                f"{_TARGET_MODULE} is in sys.modules but incomplete; call ensure_lava_importable() "
                "before importing anything from lava.",
                name=_TARGET_MODULE,
            )
        return
    try:
        spec = importlib.util.find_spec(_TARGET_MODULE)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        raise ImportError(_INSTALL_HINT, name="lava")
    if sys.version_info < (3, 11) or _hook_installed():
        return
    sys.meta_path.insert(0, _ByteEncoderFixFinder())
