"""Make lava-nc 0.10.0 importable on Python 3.11, and in a process that already fixed its multiprocessing
start method, without touching site-packages.

Why, first: `lava/magma/compiler/var_model.py` declares the plain (unhashable) dataclass `ByteEncoder` and then
uses `ByteEncoder()` instances as field defaults of `CoreEncoder`, `ChipEncoder` and `AxonEncoder`. Since
Python 3.11 `dataclasses` rejects unhashable defaults, so importing the Lava compiler raises
``ValueError: mutable default <class ...ByteEncoder> ... use default_factory``. Nothing in Lava mutates a
`ByteEncoder`, so declaring it ``@dataclass(frozen=True)`` (hashable) is the whole fix. All Lava
repositories are archived: the fix will not come from upstream, so the project carries it here.

Why, second: `lava/magma/runtime/message_infrastructure/multiprocessing.py` calls
``mp.set_start_method('fork')`` at import time (line 47, on every system but Windows), without ``force``.
Once anything has fixed the start method of the process, that call raises ``RuntimeError: context has
already been set``. A multiprocessing lock is enough to fix it: `tqdm` creates one for its first bar, so
importing Lava's runtime after a training run (`TrainingRun.fit`) in the same process failed. The fix skips
the call when the start method is already ``'fork'``, the very method Lava asks for (see
:func:`ensure_lava_importable` for why this and not another option).

How: `ensure_lava_importable()` puts a finder in front of `sys.meta_path` that intercepts only those two
modules. When a module's source contains the known broken line(s), the finder serves a loader that compiles
the source with that one spot fixed, same number of lines, under the original file name (tracebacks and
`inspect` still point at the real file). Any other source (a fixed Lava, a different version) is left to the
normal import machinery. Nothing happens when this module is imported; only calling
`ensure_lava_importable()` installs the hook. Lava's runtime forks its worker processes on Linux, so they
inherit the patched modules from the parent.
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
_START_METHOD_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"
_BROKEN_START_METHOD = "\nif platform.system() != 'Windows':\n    mp.set_start_method('fork')\n"
# One line for one line: tracebacks keep the file's line numbers. Any other method already set still raises.
_FIXED_START_METHOD = ("\nif platform.system() != 'Windows':\n"
                       "    if mp.get_start_method(allow_none=True) != 'fork': mp.set_start_method('fork')\n")
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


def _source_fixes() -> dict[str, tuple[str, str]]:
    """Module name -> (broken source text, its replacement with the same number of lines)."""
    fixes = {_START_METHOD_MODULE: (_BROKEN_START_METHOD, _FIXED_START_METHOD)}
    if sys.version_info >= (3, 11):  # older Pythons accept the unhashable dataclass defaults
        fixes[_TARGET_MODULE] = (_BROKEN_DECLARATION, _FIXED_DECLARATION)
    return fixes


class _LavaSourceFixFinder(importlib.abc.MetaPathFinder):
    """Meta path finder that serves `lava.magma.compiler.var_model` with `ByteEncoder` made frozen and
    `lava.magma.runtime.message_infrastructure.multiprocessing` with its start method set only if needed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        fix = _source_fixes().get(fullname)
        if fix is None:
            return None
        spec = self._find_original_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        broken, fixed = fix
        source = spec.loader.get_source(fullname)
        if source is None or broken not in source:
            return None  # Unknown or already fixed source: let the normal import run untouched.
        # Same number of lines before and after: line numbers in tracebacks stay those of the file.
        patched = source.replace(broken, fixed, 1)
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
    return any(type(finder).__name__ == _LavaSourceFixFinder.__name__ for finder in sys.meta_path)


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

    Idempotent: the import hook is installed at most once per interpreter. It fixes, at their import, the
    unhashable `ByteEncoder` defaults (Python >= 3.11 only) and Lava's unconditional
    ``mp.set_start_method('fork')``, which raises once the start method is fixed (module docstring).

    The start-method fix skips Lava's call when the method is already ``'fork'`` and makes it otherwise, so
    it changes nothing that Lava's own line would not. The alternatives are worse: calling
    ``set_start_method('fork', force=True)`` here cannot work, since Lava's runtime module is often imported
    long after this call (after a training run) and its own call without ``force`` then fails on the
    method we set; forcing just before that import would need the same import hook, and would silently
    replace a method the program chose (``'spawn'``) under its existing pools and locks. Wrapping
    `multiprocessing.set_start_method` while Lava imports would change a process-wide function that other
    threads can call meanwhile. Patching the one line touches nothing outside Lava's module. A program
    that set another method still gets Lava's "context has already been set": Lava's runtime needs fork
    (its workers inherit the parent's state, these patches included).

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
    else:
        try:
            spec = importlib.util.find_spec(_TARGET_MODULE)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            raise ImportError(_INSTALL_HINT, name="lava")
    if not _hook_installed():  # still needed with var_model loaded: Lava's runtime may come later
        sys.meta_path.insert(0, _LavaSourceFixFinder())
