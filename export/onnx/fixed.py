"""One step of a :class:`FixedPointNetwork` as an ONNX graph, exactly docs/fixed-point.md (``fixed_step_model``).

Interface (batch = any size; shapes without the batch axis as in the network):

- inputs: ``x`` int64 (batch, *input_shape), graded values 0 ... 255 (§5.3); ``step`` int64 scalar, the
  0-based index t of this step (§1.3; it switches the delayed biases on, §3.4); per layer k: ``u_k``,
  ``v_k`` (the neuron state after the previous step, §3) and ``a_k`` (the delay buffer: the synaptic input
  computed at step t - 1 and delivered now, §4.8; for a recurrent layer the sum with its recurrent input,
  §4.9), int64 (batch, *shape_k). Step 0 starts from zeros (§3.8).
- outputs: ``output`` int64 (the last layer's spikes, or its v for a readout, §5.4), ``spikes_k`` int8
  (0/1), and for every state input ``s`` the new value ``s_next`` (``step_next`` = step + 1).

The arithmetic is in float64 on integer values: every intermediate is an integer below 2**53 in magnitude
(u, v < 2**24, products with a 12-bit decay < 2**36, synaptic sums bounded by the compiler's
``matmul_bound``), so float64 holds it exactly (§1.1), and only exact operations are used: products,
sums, multiplication by powers of two, adding 1/2 (``shift_rounding = "nearest"``, §4.7) and Floor.
Division toward zero (§1.2) is ``Sign(q) * Floor(|q|)``; onnxruntime's integer Div also rounds toward zero,
but it has no arithmetic right shift (BitShift is unsigned only) and no float64 Conv, so convolutions are an
explicit gather (im2col) and a MatMul.
"""

from __future__ import annotations

import math

import numpy as np
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.simulator import bias_int, dense_weight_int
from bso_deploy.hardware.spec import SPEC

from .builder import BATCH, GraphBuilder, sum_pool

__all__ = ["fixed_step_model", "im2col_indices"]

_F = np.float64


def im2col_indices(input_shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int]) -> np.ndarray:
    """Indices into the flattened zero-padded input (C, H + 2 ph, W + 2 pw) such that ``taken[o, j]`` is input
    element j (C order over (c, ky, kx)) of output position o (C order over (oy, ox)) of a 2-D
    cross-correlation (docs/fixed-point.md §4.4). Shape (H_out W_out, C kh kw)."""
    channels, height, width = input_shape
    padded_h, padded_w = height + 2 * padding[0], width + 2 * padding[1]
    out_h = (padded_h - kernel[0]) // stride[0] + 1
    out_w = (padded_w - kernel[1]) // stride[1] + 1
    c, ky, kx = np.meshgrid(np.arange(channels), np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
    oy, ox = np.meshgrid(np.arange(out_h) * stride[0], np.arange(out_w) * stride[1], indexing="ij")
    rows = oy.reshape(-1, 1) + ky.reshape(1, -1)
    cols = ox.reshape(-1, 1) + kx.reshape(1, -1)
    return (c.reshape(1, -1) * padded_h * padded_w + rows * padded_w + cols).astype(np.int64)


def _trunc_decay(g: GraphBuilder, x: str, factor: int, hint: str) -> str:
    """``sign(x f) * floor(|x f| / 4096)`` (§1.2, §3.1, §3.3); f = 4096: x; f = 0: 0."""
    if factor == SPEC.decay_unity:
        return x
    if factor == 0:
        return g.op("Mul", x, g.constant(0.0, "zero", _F), hint=hint)
    scaled = g.op("Mul", x, g.constant(factor / SPEC.decay_unity, f"{hint}_factor", _F))  # exact: a dyadic
    return g.op("Mul", g.op("Sign", scaled), g.op("Floor", g.op("Abs", scaled)), hint=hint)


def _shift(g: GraphBuilder, x: str, exponent: int, rounding: str, hint: str) -> str:
    """``x << e``, or for e < 0 ``floor(x / 2**-e)`` (``floor``) or ``floor(x / 2**-e + 1/2)`` (``nearest``)
    (§1.2, §4.7); x / 2**-e + 1/2 is exact in float64 (|x| + 2**(-e-1) < 2**53)."""
    if exponent == 0:
        return x
    scaled = g.op("Mul", x, g.constant(2.0 ** exponent, f"{hint}_scale", _F))
    if exponent > 0:
        return scaled
    if rounding == "nearest":
        scaled = g.op("Add", scaled, g.constant(0.5, "half", _F))
    return g.op("Floor", scaled, hint=hint)


def _synapse(g: GraphBuilder, x: str, layer: FixedPointLayer, k: int) -> str:
    """a_next of layer k from its input x (batch, *input_shape), float64 (§4.2 - §4.7)."""
    x = sum_pool(g, x, layer.input_shape, layer.pool, k)
    weights = layer.weight if layer.binary else dense_weight_int(layer.weight)
    if layer.kind == "dense":
        matrix = g.constant(np.asarray(weights, dtype=_F).T, f"weight_{k}")
        acc = g.op("MatMul", g.op("Flatten", x, axis=1), matrix, hint=f"acc_{k}")
    else:
        channels, height, width = layer.pooled_shape
        out_channels, _, kh, kw = weights.shape
        (ph, pw), out_shape = layer.padding, layer.output_shape
        pads = g.constant([0, 0, ph, pw, 0, 0, ph, pw], f"pads_{k}", np.int64)
        padded = g.op("Pad", x, pads, mode="constant") if (ph, pw) != (0, 0) else x
        flat = g.op("Reshape", padded, g.constant([-1, channels * (height + 2 * ph) * (width + 2 * pw)],
                                                  f"flat_shape_{k}", np.int64))
        indices = g.constant(im2col_indices((channels, height, width), (kh, kw), layer.stride, layer.padding),
                             f"im2col_{k}")
        columns = g.op("Gather", flat, indices, axis=1)  # (batch, H_out W_out, C kh kw)
        matrix = g.constant(np.asarray(weights, dtype=_F).reshape(out_channels, -1).T, f"weight_{k}")
        product = g.op("Transpose", g.op("MatMul", columns, matrix), perm=[0, 2, 1])
        acc = g.op("Reshape", product, g.constant([-1, *out_shape], f"out_shape_{k}", np.int64), hint=f"acc_{k}")
    if layer.weight_mant != 1:
        acc = g.op("Mul", acc, g.constant(float(layer.weight_mant), f"mant_{k}", _F))
    return _shift(g, acc, layer.weight_exp, layer.shift_rounding, f"a_next_{k}")


def _recurrent(g: GraphBuilder, spikes: str, layer: FixedPointLayer, k: int) -> str:
    """The recurrent sum of layer k from its spikes (batch, n) float64 (§4.9: own weight rule and exponent)."""
    weights = layer.recurrent_weight if layer.recurrent_binary else dense_weight_int(layer.recurrent_weight)
    acc = g.op("MatMul", spikes, g.constant(np.asarray(weights, dtype=_F).T, f"recurrent_weight_{k}"),
               hint=f"recurrent_acc_{k}")
    if layer.recurrent_weight_mant != 1:
        acc = g.op("Mul", acc, g.constant(float(layer.recurrent_weight_mant), f"recurrent_mant_{k}", _F))
    return _shift(g, acc, layer.recurrent_weight_exp, layer.shift_rounding, f"recurrent_{k}")


def _neuron(g: GraphBuilder, a: str, u: str, v: str, step: str, layer: FixedPointLayer,
            k: int) -> tuple[str, str, str | None]:
    """(u', v' after reset, fired as bool or None) of layer k (§3.1 - §3.7), float64."""
    spec = SPEC
    current = g.op("Add", _trunc_decay(g, u, spec.decay_unity - (layer.du + 1), f"u_decayed_{k}"),
                   g.op("Mul", a, g.constant(float(1 << spec.state_shift), "state_scale", _F)))
    shifted = g.op("Sub", current, g.constant(float(spec.u_min), "u_min", _F))  # wrap into (-2**23, 2**23] (§3.2)
    turns = g.op("Floor", g.op("Mul", shifted, g.constant(1.0 / spec.u_modulus, "u_turn", _F)))
    u_new = g.op("Sub", current, g.op("Mul", turns, g.constant(float(spec.u_modulus), "u_modulus", _F)),
                 hint=f"u_new_{k}")
    v_new = g.op("Add", _trunc_decay(g, v, spec.decay_unity - layer.dv, f"v_decayed_{k}"), u_new)
    bias = bias_int(layer.bias_mant, layer.bias_exp)
    if bias.any():
        term = g.constant(bias.astype(_F), f"bias_{k}")
        if layer.bias_delay > 0:  # §3.4: from step bias_delay on
            on = g.op("GreaterOrEqual", step, g.constant(np.int64(layer.bias_delay), f"bias_delay_{k}"))
            term = g.op("Mul", term, g.op("Cast", on, to=11))  # 11: DOUBLE
        v_new = g.op("Add", v_new, term)
    v_new = g.op("Clip", v_new, g.constant(float(spec.v_min), "v_min", _F), g.constant(float(spec.v_max), "v_max", _F),
                 hint=f"v_saturated_{k}")
    if not layer.spiking:
        return u_new, v_new, None
    vth = g.constant((layer.vth << spec.state_shift).astype(_F), f"vth_{k}")
    fired = g.op("Greater", v_new, vth, hint=f"fired_{k}")
    if layer.reset == "zero":
        v_after = g.op("Where", fired, g.constant(0.0, "zero", _F), v_new)
    else:
        v_after = g.op("Sub", v_new, g.op("Where", fired, vth, g.constant(0.0, "zero", _F)))
    return u_new, v_after, fired


def fixed_step_model(fx_net: FixedPointNetwork, metadata: dict | None = None):
    """The ONNX model of one step of ``fx_net`` (interface in the module docstring)."""
    if not isinstance(fx_net, FixedPointNetwork):
        raise TypeError(f"expected a FixedPointNetwork, not {type(fx_net).__name__}")
    for layer, bound in zip(fx_net.layers, [SPEC.input_max] + [1] * (len(fx_net.layers) - 1)):
        weights = layer.weight if layer.binary else dense_weight_int(layer.weight)
        worst = math.prod(weights.shape[1:]) * int(np.abs(weights).max(initial=0)) * bound * math.prod(layer.pool)
        if worst * layer.weight_mant >= SPEC.exact_float64_bound:
            raise ValueError(f"layer {layer.name!r}: synaptic sums up to {worst * layer.weight_mant} are not exact "
                             "in float64 (docs/fixed-point.md §1.1); split the layer")
    g = GraphBuilder("bso_deploy_fixed_step")
    x = g.op("Cast", g.input("x", np.int64, (BATCH, *fx_net.input_shape)), to=11, hint="x_float")
    step = g.input("step", np.int64, ())
    states = []
    for k, layer in enumerate(fx_net.layers):
        shape = (BATCH, *layer.output_shape)
        states.append({name: g.input(f"{name}_{k}", np.int64, shape) for name in ("u", "v", "a")})
    state_names: list[str] = []
    for k, layer in enumerate(fx_net.layers):
        u, v, a = (g.op("Cast", states[k][name], to=11, hint=f"{name}_{k}_float") for name in ("u", "v", "a"))
        a_next = _synapse(g, x, layer, k)  # from this step's input, delivered at the next step (§4.8, §5.1)
        u_new, v_new, fired = _neuron(g, a, u, v, step, layer, k)
        shape = (BATCH, *layer.output_shape)
        if fired is None:
            spikes = g.op("Mul", v_new, g.constant(0.0, "zero", _F))
            x = spikes
        else:
            spikes = x = g.op("Cast", fired, to=11, hint=f"spikes_{k}_float")
        if layer.recurrent:  # its own spikes, summed into the same delay buffer (§4.9)
            a_next = g.op("Add", a_next, _recurrent(g, spikes, layer, k), hint=f"a_sum_{k}")
        for name, value in (("u", u_new), ("v", v_new), ("a", a_next)):
            g.output(f"{name}_{k}_next", g.op("Cast", value, to=7), np.int64, shape)  # 7: INT64
            state_names.append(f"{name}_{k}")
        g.output(f"spikes_{k}", g.op("Cast", spikes, to=3), np.int8, shape)  # 3: INT8
        last_v = v_new
    output = x if fx_net.layers[-1].spiking else last_v
    g.output("output", g.op("Cast", output, to=7), np.int64, (BATCH, *fx_net.output_shape))
    g.output("step_next", g.op("Add", step, g.constant(np.int64(1), "one")), np.int64, ())
    info = {"semantics": "fixed", "profile": fx_net.profile, "latency": fx_net.latency,
            "input_shape": list(fx_net.input_shape), "input_dtype": "int64", "state": ["step", *state_names],
            "layers": [layer.name for layer in fx_net.layers], **(metadata or {})}
    if fx_net.input_scale is not None:  # a network that takes float inputs (docs/fixed-point.md §10.1)
        info["input_scale"] = fx_net.input_scale
        info["input_max"] = fx_net.input_max
    doc = ("One step of a bso-deploy fixed-point network (docs/fixed-point.md): feed x, step and the state "
           "(zeros at step 0), get output, spikes_k and the next state (*_next).")
    return g.model(doc, info)
