"""Shared test helpers.

`require(name)` imports an optional dependency (lava, lava-dl, onnxruntime, nir, ...). On a developer
machine a missing one skips the test; under CI=true it fails the test, so a broken install can never
pass CI by skipping.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
import torch

# The tests use small tensors; on a 2-core machine torch's intra-op threads only add contention.
torch.set_num_threads(1)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(module_name: str) -> ModuleType:
    """Import `module_name` or skip (fail under CI=true) with a message naming the missing package."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:  # pragma: no cover - depends on the environment
        missing_dependency(module_name, error)
        raise  # unreachable: missing_dependency skips or fails


def missing_dependency(name: str, error: Exception) -> None:
    """Skip (developer machine) or fail (CI=true) because optional dependency ``name`` is missing."""
    message = (f"optional dependency {name!r} is not importable ({error}); run `make test`, "
               "which installs it through .ci/bootstrap.sh")
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_lava() -> ModuleType:
    """Lava with the project's Python 3.11 fix applied."""
    compat = require("bso_deploy.hardware.lava.compat")
    try:
        compat.ensure_lava_importable()
    except ImportError as error:
        missing_dependency("lava", error)
    return require("lava")


@pytest.fixture
def lava():
    """Lava with the project's Python 3.11 fix applied (fails under CI when missing)."""
    return require_lava()


@pytest.fixture(scope="module")
def nir():
    """The nir package (fails under CI when missing)."""
    return require("nir")


@pytest.fixture(scope="module")
def nir_io(nir):
    """bso_deploy.export.nir, which needs nir."""
    return require("bso_deploy.export.nir")
