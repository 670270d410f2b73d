"""One step of the float network of a NIR graph as an ONNX graph (``float_step_model``), float32.

The layers are the compiler's float reading of the graph (``bso_deploy.hardware.compiler.float_layers``,
docs/fixed-point.md §10.2): per layer, ``I = W x + b`` after sum pooling (an average pool's 1 / (kh kw) is
in W), the neuron's input gain folded into W and b; for CubaLIF first ``i = syn_decay i + I``, I <- i; then
``v = decay v + I`` with ``decay = 1 - 1/tau_steps`` (1 for IF), spike ``s = v > threshold``, reset
``v <- 0`` (zero) or ``v <- v - threshold`` (subtract) where s = 1. v is relative to v_leak (0 is the rest
state). This is the forward-Euler step of the NIR importer (``from_nir``) and of the trained torch model,
up to float rounding (the gain is folded into W here). A final synapse without a neuron (the classifier)
outputs its current I of the step; the prediction is the argmax of its sum over the steps. There are no
synaptic delays in the float network.

Interface: inputs ``x`` float32 (batch, *input_shape); per spiking layer k ``v_k`` and, for CubaLIF,
``i_k`` float32 (batch, *shape_k), zeros at step 0. Outputs ``output`` float32, ``spikes_k`` float32 (0/1)
per spiking layer and ``s_next`` for every state input s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from bso_deploy.hardware.quantize import FloatLayer

from .builder import BATCH, GraphBuilder, sum_pool

__all__ = ["float_step_model"]

_F = np.float32


def _current(g: GraphBuilder, x: str, layer: FloatLayer, k: int) -> str:
    """I = W x + b of layer k (pooling, flatten, dense or conv)."""
    x = sum_pool(g, x, layer.input_shape, layer.pool, k)
    if layer.kind == "dense":
        product = g.op("MatMul", g.op("Flatten", x, axis=1), g.constant(layer.weight.T, f"weight_{k}", _F))
    else:
        ph, pw = layer.padding
        product = g.op("Conv", x, g.constant(layer.weight, f"weight_{k}", _F), pads=[ph, pw, ph, pw],
                       strides=list(layer.stride))
    return g.op("Add", product, g.constant(layer.bias, f"bias_{k}", _F), hint=f"current_{k}")


def float_step_model(layers: Sequence[FloatLayer], input_shape: tuple[int, ...], metadata: dict | None = None):
    """The ONNX model of one float step of ``layers`` (interface in the module docstring)."""
    for layer in layers:
        if layer.bias_note:
            raise ValueError(f"layer {layer.name!r}: {layer.bias_note}; the float ONNX step would not be the NIR "
                             "model's (export a graph without a CubaLIF synapse bias)")
    g = GraphBuilder("bso_deploy_float_step")
    x = g.input("x", _F, (BATCH, *input_shape))
    names: list[str] = []
    inputs: dict[tuple[int, str], str] = {}
    for k, layer in enumerate(layers):
        if not layer.spiking:
            continue
        shape = (BATCH, *layer.output_shape)
        inputs[(k, "v")] = g.input(f"v_{k}", _F, shape)
        if layer.tau_syn_steps is not None:
            inputs[(k, "i")] = g.input(f"i_{k}", _F, shape)
    for k, layer in enumerate(layers):
        shape = (BATCH, *layer.output_shape)
        current = _current(g, x, layer, k)
        if not layer.spiking:
            x = current
            continue
        if layer.tau_syn_steps is not None:
            syn_decay = g.constant(1.0 - 1.0 / layer.tau_syn_steps, f"syn_decay_{k}", _F)
            current = g.op("Add", g.op("Mul", inputs[(k, "i")], syn_decay), current, hint=f"i_new_{k}")
            g.output(f"i_{k}_next", current, _F, shape)
            names.append(f"i_{k}")
        decay = 1.0 if math.isinf(layer.tau_steps) else 1.0 - 1.0 / layer.tau_steps
        v = g.op("Add", g.op("Mul", inputs[(k, "v")], g.constant(decay, f"decay_{k}", _F)), current, hint=f"v_{k}")
        threshold = g.constant(layer.threshold, f"threshold_{k}", _F)
        fired = g.op("Greater", v, threshold, hint=f"fired_{k}")
        reset = g.constant(0.0, "zero", _F) if layer.reset == "zero" else g.op("Sub", v, threshold)
        g.output(f"v_{k}_next", g.op("Where", fired, reset, v), _F, shape)
        names.append(f"v_{k}")
        x = g.op("Cast", fired, to=1, hint=f"spikes_{k}_float")  # 1: FLOAT
        g.output(f"spikes_{k}", x, _F, shape)
    g.output("output", x, _F, (BATCH, *layers[-1].output_shape))
    info = {"semantics": "float", "input_shape": list(input_shape), "input_dtype": "float32", "state": names,
            "layers": [layer.name for layer in layers], **(metadata or {})}
    doc = ("One step of a bso-deploy float spiking network: feed x and the state (zeros at step 0), get "
           "output, spikes_k and the next state (*_next).")
    return g.model(doc, info)
