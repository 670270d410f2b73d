"""Checks shared by the compiler's tests: foreign-style NIR chains and the quantization report's bounds
(docs/fixed-point.md §8, §10)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
from bso_deploy.hardware.network import FixedPointNetwork
from bso_deploy.hardware.simulator import dense_weight_int
from bso_deploy.hardware.spec import SPEC

REPORT_FIELDS = {"layer", "nodes", "kind", "binary", "spiking", "reset", "scale", "scale_min", "scale_max",
                 "binding_bound", "weight_bits", "weight_max_abs_error", "threshold_max_abs_error",
                 "bias_max_abs_error", "du", "dv", "decay_error", "activation_bound", "u_bound", "v_bound",
                 "matmul_bound", "bias_delay"}


def chain(nir, *nodes, shape=(4,), metadata=None):
    """Input -> n0 -> n1 -> ... -> Output (foreign style: no bso-deploy metadata)."""
    named = {"input": nir.Input(input_type=np.array(shape))}
    named.update({f"n{i}": node for i, node in enumerate(nodes)})
    last = getattr(nodes[-1], "weight", np.zeros((1,)))
    named["output"] = nir.Output(output_type=np.array([last.shape[0]]))
    return nir.NIRGraph(nodes=named, edges=list(itertools.pairwise(named)), metadata=metadata or {},
                        type_check=False)


def lif(nir, n: int, tau: float, r: float, threshold: float = 1.0, **extra):
    full = lambda value: np.full(n, value, dtype=np.float64)  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(extra.pop("v_leak", 0.0)), v_threshold=full(threshold),
                   v_reset=full(extra.pop("v_reset", 0.0)), **extra)


def worst_activation(layer, input_max: int) -> int:
    """|a| bound recomputed from the integer layer itself (docs/fixed-point.md §8)."""
    weights = layer.weight if layer.binary else dense_weight_int(layer.weight)
    rows = weights.reshape(weights.shape[0], -1)
    per_row = np.maximum(np.where(rows > 0, rows, 0).sum(1), -np.where(rows < 0, rows, 0).sum(1))
    acc = int(per_row.max()) * input_max * math.prod(layer.pool) * layer.weight_mant
    return acc << layer.weight_exp if layer.weight_exp >= 0 else -((-acc) >> -layer.weight_exp)


def check_report_and_bounds(fx_net: FixedPointNetwork) -> None:
    assert len(fx_net.quantization) == len(fx_net.layers)
    json.dumps(fx_net.quantization)
    for index, (layer, report) in enumerate(zip(fx_net.layers, fx_net.quantization)):
        assert REPORT_FIELDS <= set(report), REPORT_FIELDS - set(report)
        assert report["layer"] == layer.name
        assert report["bias_delay"] == layer.bias_delay == (index + 1 if fx_net.profile == "bso" else 0)
        input_max = fx_net.quantization[0]["input_max"] if index == 0 else 1
        assert report["activation_bound"] == worst_activation(layer, input_max) <= SPEC.activation_max
        assert report["u_bound"] < SPEC.u_max
        assert report["v_bound"] is None or report["v_bound"] <= SPEC.v_max
        # rounding to nearest: errors are at most half a unit of the integer grid, in float units
        assert report["threshold_max_abs_error"] <= 0.5 / report["scale_min"] * (1 + 1e-9)
        bias_unit = (1 << int(layer.bias_exp.max())) / (64 * report["scale_min"])
        assert report["bias_max_abs_error"] <= 0.5 * bias_unit * (1 + 1e-9)
        if not layer.binary:
            assert report["weight_max_abs_error"] <= 0.5 / (report["scale"] / report.get("input_scale", 1)
                                                             / 2.0 ** (layer.weight_exp + 1)) * (1 + 1e-9)
            assert np.all(layer.weight % 2 == 0)  # 2 q survives Lava's mixed-mode truncation (§4.5)
            np.testing.assert_array_equal(dense_weight_int(layer.weight), layer.weight)
