"""NIR chain -> float layers: a lookup table from node type to a small reader (docs/fixed-point.md §10.2).

:func:`float_layers` walks the graph's chain (:mod:`.chain`); each reader adds its node to the layer being built.
A synapse (Affine, Linear, Conv2d; before it any pooling or flatten) with the neuron after it (LIF, CubaLIF,
IF) becomes one :class:`~.quantize.FloatLayer` in float units, the neuron's input gain ``r dt / tau`` (times
``w_in dt / tau_syn`` for CubaLIF) folded into its weights and bias, v kept relative to v_leak; a synapse that
feeds the Output directly is the non-spiking readout. A neuron's recurrent synapse (:mod:`.chain`) joins its
layer. Unsupported nodes, values and profile restrictions raise ValueError naming the node, the parameter and
the option that would fix it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import nir
import numpy as np
from bso_deploy.export.nir.importer import resolve_dt
from bso_deploy.export.nir.metadata import ALPHA, BINARY, SIGNS, TAU_STEPS, metadata_float, reset_mode

from bso_deploy.errors import InvalidInputError

from .chain import graph_chain
from .chain import node_error as _node_error
from .quantize import FloatLayer, readout_in_one_unit
from .spec import SPEC, get_profile

__all__ = ["READERS", "SUPPORTED_NODE_TYPES", "float_layers"]


def _pair(value: Any, name: str, node: Any, what: str) -> tuple[int, int]:
    array = np.asarray(value).reshape(-1)
    if array.size == 1:
        array = np.repeat(array, 2)
    if array.size != 2:
        raise _node_error(name, node, f"{what} must be an int or a pair, got {value!r}")
    return int(array[0]), int(array[1])


@dataclass
class _Builder:
    """The layer under construction while walking the chain (one compile call's private state)."""

    profile: str
    dt: float | None
    default_reset: str | None
    shape: tuple[int, ...]
    layers: list[FloatLayer] = field(default_factory=list)
    layer_input: tuple[int, ...] = ()
    pool: tuple[int, int] = (1, 1)
    pool_factor: float = 1.0
    nodes: list[str] = field(default_factory=list)
    synapse: dict[str, Any] | None = None
    recurrent: dict[str, tuple[str, Any]] = field(default_factory=dict)  # neuron -> (name, recurrent synapse)

    def start(self) -> None:
        self.layer_input, self.pool, self.pool_factor, self.nodes, self.synapse = self.shape, (1, 1), 1.0, [], None


def _flatten(b: _Builder, name: str, node: nir.Flatten) -> None:
    if b.synapse is not None:
        raise _node_error(name, node, "a Flatten between a synapse and its neuron is not supported")
    rank = len(b.shape)
    start, end = int(np.asarray(node.start_dim)) % rank, int(np.asarray(node.end_dim)) % rank
    if (start, end) != (0, rank - 1):
        raise _node_error(name, node, f"flattens dims {start}..{end} of {b.shape}; only a full flatten (C order, "
                          "docs/fixed-point.md §4.3) is supported")
    b.shape = (math.prod(b.shape),)
    b.nodes.append(name)


def _pool(b: _Builder, name: str, node: nir.SumPool2d | nir.AvgPool2d) -> None:
    if not get_profile(b.profile).pooling:
        raise _node_error(name, node, f"profile {b.profile!r} has no pooling (Lava's Dense); use --profile bso")
    if b.synapse is not None or len(b.shape) != 3:
        raise _node_error(name, node, f"pooling needs a (C, H, W) input before the synapse, got shape {b.shape}")
    kernel = _pair(node.kernel_size, name, node, "kernel_size")
    stride = kernel if node.stride is None else _pair(node.stride, name, node, "stride")
    padding = _pair(node.padding, name, node, "padding")
    channels, height, width = b.shape
    if stride != kernel or padding != (0, 0) or height % kernel[0] or width % kernel[1]:
        raise _node_error(name, node, f"only non-overlapping pooling (stride = kernel, no padding, kernel dividing "
                          f"the input) is supported (§4.2); got kernel {kernel}, stride {stride}, padding {padding} "
                          f"on {b.shape}")
    b.pool = (b.pool[0] * kernel[0], b.pool[1] * kernel[1])
    if isinstance(node, nir.AvgPool2d):
        b.pool_factor /= kernel[0] * kernel[1]  # folded into the next weights (§4.2)
    b.shape = (channels, height // kernel[0], width // kernel[1])
    b.nodes.append(name)


def _binary_parts(b: _Builder, name: str, node: Any, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(signs, alpha) when the weight is exactly +-alpha per output row: from bso-deploy metadata, else
    detected (every row one nonzero magnitude; in profile loihi only with one magnitude overall)."""
    meta = node.metadata or {}
    rows = weight.reshape(weight.shape[0], -1)
    if BINARY in meta and bool(np.asarray(meta[BINARY])):
        signs, alpha = np.asarray(meta.get(SIGNS)), np.asarray(meta.get(ALPHA), dtype=np.float64).reshape(-1)
        if signs.shape != weight.shape or not np.all(np.abs(signs) == 1) or alpha.shape != (weight.shape[0],):
            raise _node_error(name, node, f"metadata binary=True needs signs (+-1, shape {weight.shape}) and alpha "
                              f"(shape ({weight.shape[0]},)); got {signs.shape} and {alpha.shape}")
        if not np.all(alpha > 0):
            rows_zero = np.flatnonzero(alpha <= 0)[:8].tolist()
            raise _node_error(name, node, f"alpha must be > 0 (a BatchNorm gamma of 0?) in rows {rows_zero}; "
                              "a zero row has no binary form")
        expected = signs.reshape(rows.shape) * alpha[:, None]
        if not np.allclose(expected, rows, rtol=1e-6, atol=0):
            raise _node_error(name, node, "metadata signs * alpha do not match the weight")
        return signs.astype(np.int64), alpha
    magnitude = np.abs(rows[:, :1])
    if rows.size == 0 or np.any(magnitude == 0) or not np.array_equal(np.abs(rows), np.broadcast_to(magnitude,
                                                                                                    rows.shape)):
        return None
    if not get_profile(b.profile).per_neuron_threshold and np.ptp(magnitude) != 0:
        return None
    return np.sign(weight).astype(np.int64), magnitude.reshape(-1)


def _synapse(b: _Builder, name: str, node: nir.Affine | nir.Linear | nir.Conv2d) -> None:
    if b.synapse is not None:
        raise _node_error(name, node, f"follows the synapse {b.synapse['name']!r} without a neuron in between")
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = np.zeros(weight.shape[0]) if getattr(node, "bias", None) is None else \
        np.asarray(node.bias, dtype=np.float64).reshape(-1)
    if isinstance(node, nir.Conv2d):
        kind = "conv"
        if kind not in get_profile(b.profile).connection_kinds:
            raise _node_error(name, node, f"profile {b.profile!r} has dense connections only; use --profile bso")
        if int(np.asarray(node.groups)) != 1 or _pair(node.dilation, name, node, "dilation") != (1, 1):
            raise _node_error(name, node, "groups and dilation other than 1 are not supported (§4.4)")
        if len(b.shape) != 3 or b.shape[0] != weight.shape[1]:
            raise _node_error(name, node, f"receives shape {b.shape}; its weight {weight.shape} needs "
                              f"({weight.shape[1]}, H, W)")
        stride = _pair(node.stride, name, node, "stride")
        if isinstance(node.padding, (str, bytes)):
            mode = node.padding.decode() if isinstance(node.padding, bytes) else node.padding
            if mode == "same" and (stride != (1, 1) or weight.shape[2] % 2 == 0 or weight.shape[3] % 2 == 0):
                raise _node_error(name, node, "padding='same' needs stride 1 and odd kernels")
            padding = (weight.shape[2] // 2, weight.shape[3] // 2) if mode == "same" else (0, 0)
        else:
            padding = _pair(node.padding, name, node, "padding")
        out_shape = (weight.shape[0], *((b.shape[1 + i] + 2 * padding[i] - weight.shape[2 + i]) // stride[i] + 1
                                        for i in range(2)))
    else:
        kind, stride, padding = "dense", (1, 1), (0, 0)
        if len(b.shape) != 1 or b.shape[0] != weight.shape[1]:
            raise _node_error(name, node, f"receives shape {b.shape}; its weight {weight.shape} needs "
                              f"({weight.shape[1]},) (insert a Flatten before it)")
        out_shape = (weight.shape[0],)
    binary = _binary_parts(b, name, node, weight)
    b.synapse = {"name": name, "kind": kind, "weight": weight * b.pool_factor, "bias": bias, "stride": stride,
                 "padding": padding, "out_shape": tuple(int(s) for s in out_shape),
                 "signs": None if binary is None else binary[0],
                 "alpha": None if binary is None else binary[1] * b.pool_factor}
    b.nodes.append(name)
    b.shape = b.synapse["out_shape"]


def _per_neuron(b: _Builder, name: str, node: Any, value: Any, what: str) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), b.shape).astype(np.float64)
    except ValueError:
        raise _node_error(name, node, f"{what} has shape {np.shape(value)}; expected {b.shape} or one value") from None


def _steps(b: _Builder, name: str, node: Any, tau: np.ndarray, what: str) -> float:
    """tau in steps, one value per layer (the hardware has one decay register per layer, §3)."""
    steps = tau / b.dt
    registers = np.unique(np.floor(SPEC.decay_unity / steps + 0.5))
    if registers.size > 1:
        raise _node_error(name, node, f"{what} differs between neurons (decays {registers[:4].tolist()}...); the "
                          "hardware has one decay per layer")
    median = float(np.median(steps))
    meta = node.metadata or {}
    if what == "tau" and TAU_STEPS in meta:  # bso-deploy's exact trained value, unless dt was overridden
        recorded = metadata_float(meta[TAU_STEPS], f"node {name!r} metadata tau_steps")
        if math.isclose(recorded, median, rel_tol=1e-9):
            return recorded
    return median


def _channel_gain(b: _Builder, name: str, node: Any, gain: np.ndarray, kind: str) -> np.ndarray:
    """Per output row (dense) or channel (conv) input gain; conv needs one value per channel."""
    if kind == "dense":
        return gain
    per_channel = gain.reshape(gain.shape[0], -1)
    if np.any(per_channel != per_channel[:, :1]):
        raise _node_error(name, node, "the input gain r*dt/tau differs within a channel; a conv layer can fold "
                          "one gain per channel only")
    return per_channel[:, 0]


def _neuron(b: _Builder, name: str, node: nir.LIF | nir.CubaLIF | nir.IF) -> None:
    synapse = b.synapse
    if synapse is None:
        raise _node_error(name, node, "a neuron must follow a synapse (Affine, Linear or Conv2d)")
    if b.dt is None:
        raise _node_error(name, node, "needs a time step: pass dt= (seconds)")
    dt = b.dt
    v_threshold = _per_neuron(b, name, node, node.v_threshold, "v_threshold")
    v_reset = _per_neuron(b, name, node, 0.0 if node.v_reset is None else node.v_reset, "v_reset")
    tau_syn_steps, note = None, ""
    if isinstance(node, nir.IF):
        v_leak, gain, tau_steps = np.zeros(b.shape), _per_neuron(b, name, node, node.r, "r") * dt, math.inf
    else:
        tau = _per_neuron(b, name, node, node.tau_mem if isinstance(node, nir.CubaLIF) else node.tau, "tau")
        v_leak = _per_neuron(b, name, node, node.v_leak, "v_leak")
        gain = _per_neuron(b, name, node, node.r, "r") * dt / tau
        tau_steps = _steps(b, name, node, tau, "tau")
    bias_gain = 1.0
    if isinstance(node, nir.CubaLIF):
        tau_syn = _per_neuron(b, name, node, node.tau_syn, "tau_syn")
        w_in = _per_neuron(b, name, node, 1.0 if node.w_in is None else node.w_in, "w_in")
        gain = gain * w_in * dt / tau_syn
        tau_syn_steps = _steps(b, name, node, tau_syn, "tau_syn")
        bias_gain = tau_syn_steps  # the bias enters v at the steady state of the current it would drive
        if np.any(synapse["bias"] != 0):
            note = "CubaLIF: the synapse bias is added to v at its steady-state value through the current (§10.2)"
    mode = reset_mode(node.metadata or {}, b.default_reset, f"node {name!r}") or "zero"
    if mode not in get_profile(b.profile).reset_modes:
        raise _node_error(name, node, f"reset {mode!r} is not available in profile {b.profile!r} (Lava's LIF resets "
                          "to zero); use --profile bso")
    if mode == "zero" and not np.allclose(v_reset, v_leak, rtol=1e-9, atol=1e-12):
        raise _node_error(name, node, "v_reset must equal v_leak (the hardware resets v to its rest value 0)")
    if mode == "subtract" and np.any(v_leak != 0):
        raise _node_error(name, node, "v_leak must be 0 with the subtractive reset")
    threshold = v_threshold - v_leak  # v is kept relative to v_leak, which then drops out (§10.2)
    if np.any(threshold < 0):
        raise _node_error(name, node, f"v_threshold - v_leak must be >= 0 (vth is unsigned), min is {threshold.min()}")
    kind = synapse["kind"]
    row_gain = _channel_gain(b, name, node, gain, kind)
    row_shape = (-1,) + (1,) * (synapse["weight"].ndim - 1)
    signs, alpha = synapse["signs"], synapse["alpha"]
    if signs is not None:
        if np.any(row_gain == 0):
            raise _node_error(name, node, "a zero input gain (r = 0) leaves no binary form of the weights")
        signs, alpha = signs * np.sign(row_gain).reshape(row_shape).astype(np.int64), alpha * np.abs(row_gain)
    bias = np.broadcast_to(synapse["bias"].reshape((-1,) + (1,) * (len(b.shape) - 1)), b.shape)
    recurrent_weight, nodes = None, (*b.nodes, name)
    if name in b.recurrent:
        recurrent_name, recurrent = b.recurrent[name]
        recurrent_weight, recurrent_bias = _recurrent_synapse(b, name, node, recurrent_name, recurrent)
        bias = bias + recurrent_bias  # NIR sums the recurrent synapse's output with the feed-forward one
        recurrent_weight = recurrent_weight * row_gain.reshape(-1, 1)
        nodes = (*nodes, recurrent_name)
    b.layers.append(FloatLayer(
        name=name, nodes=nodes, kind=kind, input_shape=b.layer_input, pool=b.pool,
        weight=synapse["weight"] * row_gain.reshape(row_shape), bias=bias * gain * bias_gain, threshold=threshold,
        tau_steps=tau_steps, tau_syn_steps=tau_syn_steps, reset=mode, signs=signs, alpha=alpha,
        stride=synapse["stride"], padding=synapse["padding"], output_shape=b.shape, bias_note=note,
        recurrent_weight=recurrent_weight))
    b.start()


def _recurrent_synapse(b: _Builder, neuron_name: str, neuron: Any, name: str,
                       node: nir.Affine | nir.Linear) -> tuple[np.ndarray, np.ndarray]:
    """(weight (n, n), bias (n,)) of a neuron's recurrent synapse, float64; ValueError unless the neuron
    population is flat (dense) and the weight square."""
    weight = np.asarray(node.weight, dtype=np.float64)
    n = math.prod(b.shape)
    if len(b.shape) != 1 or weight.shape != (n, n):
        raise _node_error(name, node, f"is the recurrent synapse of {neuron_name!r} (shape {b.shape}); it needs a "
                          f"flat population and a ({n}, {n}) weight, got {weight.shape}")
    bias = np.zeros(n) if getattr(node, "bias", None) is None else \
        np.broadcast_to(np.asarray(node.bias, dtype=np.float64).reshape(-1), (n,))
    return weight, np.asarray(bias)


def _output(b: _Builder, name: str, node: nir.Output) -> None:
    if b.synapse is None:
        if not b.layers or b.nodes:
            raise _node_error(name, node, "the Output must follow a synapse (readout) or a neuron")
        return
    synapse = b.synapse
    bias = np.broadcast_to(synapse["bias"].reshape((-1,) + (1,) * (len(b.shape) - 1)), b.shape)
    b.layers.append(readout_in_one_unit(FloatLayer(  # binary only with one alpha: the argmax needs one unit
        name=synapse["name"], nodes=(*b.nodes, name), kind=synapse["kind"], input_shape=b.layer_input,
        pool=b.pool, weight=synapse["weight"], bias=np.array(bias), threshold=None, tau_steps=math.inf,
        tau_syn_steps=None, reset="zero", signs=synapse["signs"], alpha=synapse["alpha"], stride=synapse["stride"],
        padding=synapse["padding"], output_shape=b.shape)))
    b.start()


READERS: MappingProxyType[type, Callable[[_Builder, str, Any], None]] = MappingProxyType({
    nir.Flatten: _flatten, nir.SumPool2d: _pool, nir.AvgPool2d: _pool, nir.Affine: _synapse, nir.Linear: _synapse,
    nir.Conv2d: _synapse, nir.LIF: _neuron, nir.CubaLIF: _neuron, nir.IF: _neuron, nir.Output: _output,
})
SUPPORTED_NODE_TYPES = tuple(sorted({"Input", *(t.__name__ for t in READERS)}))


def float_layers(graph: nir.NIRGraph, profile: str = "bso", dt: float | None = None) -> list[FloatLayer]:
    """The graph read into float layers as they are compiled (gains folded; a binary readout of uneven alpha
    as full precision, :func:`~.quantize.readout_in_one_unit`; §10.2); ValueError naming the node otherwise."""
    get_profile(profile)
    nodes, _, chain, loops, shape = graph_chain(graph)
    builder = _Builder(profile=profile, dt=resolve_dt(dt, graph, nodes),
                       default_reset=reset_mode(graph.metadata or {}, None, "graph"), shape=shape,
                       recurrent={neuron: (synapse, nodes[synapse]) for neuron, synapse in loops.items()})
    builder.start()
    for name, node in chain:
        if isinstance(node, (nir.Input, nir.Output)) and node is not chain[-1][1]:
            continue  # the Input/Output of an inlined subgraph passes its value through
        reader = READERS.get(type(node))
        if reader is None:
            supported = ", ".join(SUPPORTED_NODE_TYPES)
            raise _node_error(name, node, f"is not supported by the compiler; supported: {supported}")
        reader(builder, name, node)
    if not builder.layers:
        raise InvalidInputError("the graph has no synapse; nothing to compile")
    return builder.layers

