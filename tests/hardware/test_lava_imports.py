"""hardware/lava is an independent implementation (issue 12): none of its modules imports another implementation's
arithmetic, so the three-way parity tests (sim, torch, lava) compare three pieces of arithmetic.

Every module under ``hardware/lava/`` is parsed with ``ast`` (not imported: no Lava needed) and every import in
it, at the top or inside a function, relative or absolute, is resolved to the module it names. Forbidden:

- the modules of :data:`FORBIDDEN_MODULES` (and their submodules): the NumPy simulator and its step functions,
  the torch reference, its kernels, the torch learning rule and the NumPy rule's readout part;
- from ``bso_deploy.hardware.learning`` (the NumPy learning rule) every name but :data:`ALLOWED_FROM_LEARNING`,
  which hold or check data (its step functions ``learning_step_int``, ``readout_error_int``, ``trace_step_int``,
  ``surrogate_int``, ... are forbidden), and the module itself (``import ...learning``);
- a string naming a forbidden module (``importlib.import_module`` or a lazy table).

Allowed: the spec's constants (``hardware.spec``, ``hardware.learning_rule``), the network format
(``hardware.network``), the learner containers (``hardware.learner``), the compiler (which makes the networks)
and Lava itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

LAVA_DIR = Path(__file__).resolve().parents[2] / "hardware" / "lava"
LAVA_PACKAGE = "bso_deploy.hardware.lava"

FORBIDDEN_MODULES = (
    "bso_deploy.hardware.simulator",
    "bso_deploy.hardware.step_functions",
    "bso_deploy.hardware.torch_reference",
    "bso_deploy.hardware.torch_kernels",
    "bso_deploy.hardware.torch_learning",
    "bso_deploy.hardware.learning_readout",
)
LEARNING_MODULE = "bso_deploy.hardware.learning"
ALLOWED_FROM_LEARNING = frozenset({"init_learning_state", "refuse_recurrent", "with_layer_weight"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(LAVA_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((LAVA_PACKAGE, *parts))


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _forbidden(name: str) -> bool:
    return any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN_MODULES)


def import_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every forbidden import of ``source`` (the text of ``module``), as readable lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _forbidden(alias.name) or alias.name == LEARNING_MODULE:
                    found.append(f"{module}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                name = f"{origin}.{alias.name}"
                if _forbidden(origin) or _forbidden(name) or name == LEARNING_MODULE:
                    found.append(f"{module}:{node.lineno}: from {origin} import {alias.name}")
                elif origin == LEARNING_MODULE and alias.name not in ALLOWED_FROM_LEARNING:
                    found.append(f"{module}:{node.lineno}: from {origin} import {alias.name} (NumPy rule arithmetic)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _forbidden(node.value.strip()):
            found.append(f"{module}:{node.lineno}: names {node.value.strip()!r}")
    return found


def test_no_lava_module_imports_another_implementations_arithmetic() -> None:
    paths = sorted(LAVA_DIR.rglob("*.py"))
    assert len(paths) >= 12  # every module of the package, subpackages included
    violations = []
    for path in paths:
        violations += import_violations(path.read_text(encoding="utf-8"), _module_name(path),
                                        is_package=path.name == "__init__.py")
    assert violations == []


def test_the_guard_sees_relative_absolute_and_lazy_imports() -> None:
    """The checker is not vacuous: each forbidden form is caught, the allowed ones pass."""
    module = "bso_deploy.hardware.lava.processes.neuron"
    caught = {
        "from bso_deploy.hardware.simulator import lif_step_int": 1,
        "from ...step_functions import bias_int": 1,
        "from ... import simulator, spec": 1,
        "def f():\n    from ...torch_reference import TorchReference": 1,
        "import bso_deploy.hardware.torch_kernels as kernels": 1,
        "from ...learning import learning_step_int, with_layer_weight": 1,
        "import bso_deploy.hardware.learning": 1,
        "from bso_deploy.hardware import learning": 1,
        "importlib.import_module('bso_deploy.hardware.simulator')": 1,
        "from ...learning import init_learning_state, refuse_recurrent": 0,
        "from ...spec import SPEC\nfrom ...network import FixedPointLayer\nfrom ...learning_rule import HASH_MASK": 0,
        "from ..arithmetic import neuron_step": 0,
    }
    for source, count in caught.items():
        assert len(import_violations(source, module)) == count, source
    assert _resolve("bso_deploy.hardware.lava", True, 1, "deploy") == "bso_deploy.hardware.lava.deploy"
    assert _resolve("bso_deploy.hardware.lava.onchip", False, 2, "learning") == LEARNING_MODULE
