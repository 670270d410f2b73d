"""What 8-bit weights alone cost a float model: a diagnostic of ``bso-deploy bench deploy``.

:func:`round_weights` returns a copy of a NIR graph whose every weight matrix (Affine, Linear, Conv2d, in
nested graphs too, recurrent ones included) is rounded to ``weight_bits`` signed levels with one scale per
node, ``W' = round(W c) / c`` with ``c = (2^(weight_bits - 1) - 1) / max|W|`` (docs/fixed-point.md §10.2 without
the gains folded in; everything else stays float). :func:`weight_rounding_agreement` runs it next to the
original in the float backend. When the fixed network's prediction agreement with float is about the one
found here, the loss comes from the weight precision the hardware has, not from the scales, the bias timing
or the rounding of the states.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import nir
import numpy as np

from bso_deploy.hardware.backends import run_float

__all__ = ["round_weights", "weight_rounding_agreement"]

WEIGHTED_NODES = (nir.Affine, nir.Linear, nir.Conv2d)


def _weighted(graph: nir.NIRGraph) -> Iterator[Any]:
    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            yield from _weighted(node)
        elif isinstance(node, WEIGHTED_NODES):
            yield node


def round_weights(graph: nir.NIRGraph, weight_bits: int = 8) -> nir.NIRGraph:
    """A deep copy of ``graph`` with every weight rounded to ``weight_bits`` levels per node (module docstring)."""
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 2 <= weight_bits <= 24:
        raise ValueError(f"weight_bits must be an integer in [2, 24], got {weight_bits!r}")
    rounded = copy.deepcopy(graph)
    levels = 2 ** (weight_bits - 1) - 1
    for node in _weighted(rounded):
        weight = np.asarray(node.weight, dtype=np.float64)
        peak = float(np.abs(weight).max())
        if peak > 0:
            node.weight = np.round(weight * (levels / peak)) / (levels / peak)
    return rounded


def weight_rounding_agreement(graph: nir.NIRGraph, inputs: np.ndarray, labels: np.ndarray, dt: float | None,
                              weight_bits: int = 8, chunk: int = 150) -> dict[str, float]:
    """Float backend on ``graph`` and on :func:`round_weights` of it, inputs (T, batch, ...) in chunks of
    samples: ``agreement`` (equal predictions) and the rounded model's ``accuracy``."""
    rounded = round_weights(graph, weight_bits)
    same = correct = 0
    for start in range(0, inputs.shape[1], chunk):
        x = np.asarray(inputs[:, start:start + chunk], dtype=np.float64)
        original = run_float(graph, "float", x, dt=dt).predictions
        approximate = run_float(rounded, "float", x, dt=dt).predictions
        same += int(np.sum(original == approximate))
        correct += int(np.sum(approximate == labels[start:start + chunk]))
    return {"agreement": same / inputs.shape[1], "accuracy": correct / inputs.shape[1], "weight_bits": weight_bits}
