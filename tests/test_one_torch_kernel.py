"""One torch kernel (issue 12): hardware-aware training and the torch learner call the torch reference's public
step functions (hardware/torch_kernels.py) and carry no copy of the integer arithmetic of their own.

Read from the source with ``ast``: no private name (``_x``) imported from another module, no function named
like a kernel of the NumPy step functions or of the torch kernels (nor like the copies that existed before:
``_effective_weight``, ``synapse_int``, ...), the torch kernels imported by name, and no import inside a
function (hardware-aware training is an integration module: its imports sit at the top).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from bso_deploy.hardware import step_functions, torch_kernels

ROOT = Path(__file__).resolve().parents[1]
USERS = (*sorted((ROOT / "bso_deploy").glob("hardware_aware*.py")), ROOT / "hardware" / "torch_learning.py",
         ROOT / "hardware" / "torch_reference.py")
# the functions the kernels are made of, and the names of the copies hardware_aware.py and torch_reference.py
# carried before the torch kernels existed
KERNEL_NAMES = frozenset(
    {name for module in (step_functions, torch_kernels) for name in module.__all__
     if inspect.isfunction(getattr(module, name))}
    | {"_effective_weight", "_shift", "_trunc_decay", "synapse_int", "neuron_step_int", "_lava_dense_weights",
       "_pow2_shift", "_decay", "synaptic_input", "neuron_step", "neuron_step_counted", "_prepare"})
USED_KERNELS = {"hardware_aware.py": {"lif_step", "synaptic_current", "synapse_constants", "neuron_constants"},
                "torch_learning.py": {"lif_step", "synaptic_current", "synapse_constants", "neuron_constants"},
                "torch_reference.py": {"lif_step", "synaptic_current", "synapse_constants", "neuron_constants",
                                       "recurrent_synapse_constants"}}


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imports(tree: ast.AST) -> list[tuple[str, str]]:
    """(module, name) of every import in ``tree``: ``from m import n`` gives (m, n), ``import a.b`` (a.b, '')."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [("." * node.level + (node.module or ""), alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_guard_sees_the_integration_modules() -> None:
    names = {path.name for path in USERS}
    assert {"hardware_aware.py", "hardware_aware_metrics.py", "torch_learning.py"} <= names
    assert {"lif_step", "synaptic_current", "dense_weight_int", "_effective_weight"} <= KERNEL_NAMES


@pytest.mark.parametrize("path", USERS, ids=lambda path: path.name)
def test_no_private_name_is_imported(path: Path) -> None:
    bad = [f"{module}: {name}" for module, name in imports(parsed(path))
           if private(name) or any(private(part) for part in module.lstrip(".").split("."))]
    assert not bad, f"{path.name} imports private names of other modules: {bad}; make them public there"


@pytest.mark.parametrize("path", USERS, ids=lambda path: path.name)
def test_no_copy_of_the_integer_kernels(path: Path) -> None:
    defined = {node.name for node in ast.walk(parsed(path)) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    copies = sorted(defined & KERNEL_NAMES)
    assert not copies, f"{path.name} defines {copies}; call hardware/torch_kernels.py instead of copying it"


@pytest.mark.parametrize("name", sorted(USED_KERNELS))
def test_the_torch_kernels_are_what_they_call(name: str) -> None:
    path = next(path for path in USERS if path.name == name)
    from_kernels = {imported for module, imported in imports(parsed(path))
                    if module in (".torch_kernels", "bso_deploy.hardware.torch_kernels")}
    missing = USED_KERNELS[name] - from_kernels
    assert not missing, f"{name} does not import {sorted(missing)} from hardware/torch_kernels.py"


@pytest.mark.parametrize("path", [path for path in USERS if path.name.startswith("hardware_aware")],
                         ids=lambda path: path.name)
def test_hardware_aware_imports_sit_at_the_top(path: Path) -> None:
    inner = [f"line {node.lineno}" for function in ast.walk(parsed(path))
             if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
             for node in ast.walk(function) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not inner, f"{path.name} imports inside functions ({inner}); import at the top of the module"
