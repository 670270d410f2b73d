"""Run a NIR graph on a named backend: :data:`BACKENDS`, :func:`run_graph`, :func:`save_run`.

Two kinds of backend (:class:`Backend`):

- ``"float"`` backends run the graph itself: ``run(graph, inputs, dt, record) -> FloatRun`` with float
  inputs (T, batch, *input_shape); ``float`` is the NIR importer's module (``from_nir``, float64);
- ``"fixed"`` backends run a compiled :class:`FixedPointNetwork`: ``run(fx_net, inputs, record) ->
  SimulationResult`` with integer inputs (docs/fixed-point.md §5); ``sim`` is the NumPy simulator, ``torch``
  the torch integer reference. :func:`run_graph` compiles, quantizes the inputs and appends the
  ``latency`` zero steps that flush the synaptic delays (§5.2).

``lava`` runs a compiled network on Lava's runtime (``hardware/lava/deploy.py``, imported when that backend
runs). :data:`BACKENDS` is an immutable mapping; an unknown name is a ValueError listing the valid ones. A
fixed run also reports how many input values the input quantization clipped (``quantize.clipped_inputs``),
the saturation counts of docs/fixed-point.md §5.6 where the backend counts them, and the spike count of every
spiking layer (:func:`silent_layer_warnings` names the silent ones).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import nir
import numpy as np
import torch
from bso_deploy.export.nir import from_nir

from bso_deploy.errors import InvalidInputError
from bso_deploy.io import atomic_write
from bso_deploy.options import SCALINGS  # compile_nir's scaling modes (docs/fixed-point.md §10.3)

from ..limits import check_memory, float_input_bytes
from .compiler import compile_nir, graph_input_shape, read_graph
from .input_checks import as_array
from .network import FixedPointNetwork, LayerSaturation, SimulationResult, append_zero_steps
from .quantize import clipped_inputs, quantize_inputs
from .simulator import simulate
from .spec import SPEC
from .torch_reference import TorchReference

__all__ = [
    "BACKENDS",
    "SCALINGS",
    "SPIKING_NODE_TYPES",
    "Backend",
    "FloatRun",
    "RunResult",
    "compile_for_inputs",
    "get_backend",
    "input_clip_warning",
    "prepare_inputs",
    "run_fixed",
    "run_float",
    "run_graph",
    "save_run",
    "silent_layer_warnings",
]

BACKEND_KINDS = ("float", "fixed")
DT_HINT = "check --dt (Sinabs/IAF graphs use dt = 1, snnTorch 1e-4, Norse 1.1.0 1e-6, Rockpool 1e-3)"
SPIKING_NODE_TYPES = ("LIF", "CubaLIF", "IF")  # float nodes whose outputs are spikes (recorded per layer)


class FloatRun(NamedTuple):
    """What a float backend returns: output (T, batch, *output_shape) and, when recorded, the spikes of
    every spiking node, by node name, (T, batch, *shape)."""

    output: np.ndarray
    layers: dict[str, np.ndarray]


@dataclass(frozen=True)
class Backend:
    """A named way to run a graph; ``kind`` says which ``run`` signature it has (module docstring)."""

    name: str
    kind: str
    run: Callable[..., Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"backend name must be a non-empty string, got {self.name!r}")
        if self.kind not in BACKEND_KINDS:
            raise ValueError(f"backend {self.name!r}: kind must be one of {BACKEND_KINDS}, got {self.kind!r}")
        if not callable(self.run):
            raise TypeError(f"backend {self.name!r}: run must be callable")


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`run_graph`.

    output: (steps, batch, *output_shape): float: the Output node's value per step (T steps); fixed: the
    output of docs/fixed-point.md §5.4 over T + latency steps (spikes, or the readout's running v).
    latency: steps the fixed-point network lags the float one (0 for float). predictions: (batch,) int64:
    float: argmax of the output summed over the steps; fixed: argmax of the readout's v at the last step,
    or of the summed spikes for a spiking output. layers: when recorded, spikes per spiking layer (named
    after its NIR neuron node). u, v: when recorded on a fixed backend, per layer (readout included).
    spike_counts: spikes emitted per spiking layer over the whole run (always filled). saturation: per
    layer, the counts of docs/fixed-point.md §5.6 (fixed backends that count them; empty otherwise).
    input_clipped: input values above the network's input range, clipped by the quantization (fixed).
    """

    backend: str
    output: np.ndarray
    latency: int
    predictions: np.ndarray
    input_steps: int
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    u: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    spike_counts: dict[str, int] = field(default_factory=dict)
    saturation: dict[str, LayerSaturation] = field(default_factory=dict)
    input_clipped: int = 0


def _run_float_module(graph: nir.NIRGraph, inputs: np.ndarray, dt: float | None, record: bool) -> FloatRun:
    module = from_nir(graph, dt=dt, dtype=torch.float64)
    x = torch.as_tensor(inputs, dtype=torch.float64)
    with torch.no_grad():  # always recorded: run_float counts every layer's spikes
        outputs = module.record(x)
    layers = {name: outputs[name].numpy().astype(np.int8) for name, kind in module.node_types.items()
              if kind in SPIKING_NODE_TYPES}
    return FloatRun(output=outputs[module.output_name].numpy(), layers=layers)


def _run_torch_reference(fx_net: FixedPointNetwork, inputs: np.ndarray, record: bool) -> SimulationResult:
    return TorchReference(fx_net).run(inputs, record=record)


def _run_lava(fx_net: FixedPointNetwork, inputs: np.ndarray, record: bool) -> SimulationResult:
    from .lava.deploy import deploy  # Lava is optional and takes seconds to import: only this backend needs it

    with deploy(fx_net, sample_steps=int(np.asarray(inputs).shape[0])) as network:
        return network.run(inputs, record=record)


BACKENDS: MappingProxyType[str, Backend] = MappingProxyType({backend.name: backend for backend in (
    Backend("float", "float", _run_float_module, "the NIR importer's float64 module (from_nir)"),
    Backend("sim", "fixed", simulate, "the bit-exact NumPy simulator (hardware/simulator.py)"),
    Backend("torch", "fixed", _run_torch_reference,
            "the torch integer reference, CUDA when available (hardware/torch_reference.py)"),
    Backend("lava", "fixed", _run_lava, "Lava's runtime: bso-deploy's processes (profile bso) or Lava's Dense + "
            "LIF (profile loihi), compiled once per call (hardware/lava/deploy.py)"),
)})


def get_backend(name: str) -> Backend:
    """The backend called ``name`` in :data:`BACKENDS`; ValueError listing the valid names otherwise."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(sorted(BACKENDS))}") from None


def prepare_inputs(inputs: Any, input_shape: tuple[int, ...], time_steps: int | None = None) -> np.ndarray:
    """Float inputs as (T, batch, *input_shape) float64: given so, or (batch, *input_shape) repeated
    ``time_steps`` times. InvalidInputError (a ValueError) for other shapes, empty or non-finite inputs,
    ResourceLimitError when the float64 array would pass the memory budget (``bso_deploy.limits``)."""
    x = as_array(inputs, "inputs")
    if x.dtype.kind not in "biuf":
        raise InvalidInputError(f"inputs must be real numbers, got dtype {x.dtype}")
    shape = tuple(input_shape)
    if x.ndim == len(shape) + 2 and tuple(x.shape[2:]) == shape:
        if time_steps is not None and time_steps != x.shape[0]:
            raise InvalidInputError(f"inputs hold {x.shape[0]} time steps but time_steps={time_steps} was given; "
                                    "give (batch, *input_shape) inputs to repeat them, or drop time_steps")
        steps = int(x.shape[0])
    elif x.ndim == len(shape) + 1 and tuple(x.shape[1:]) == shape:
        if time_steps is None:
            raise InvalidInputError(f"inputs of shape {x.shape} are (batch, *input_shape): pass time_steps to "
                                    "repeat them")
        if (isinstance(time_steps, bool) or not isinstance(time_steps, int | float | np.integer | np.floating)
                or not math.isfinite(time_steps) or int(time_steps) != time_steps or time_steps < 1):
            raise InvalidInputError(f"time_steps must be an integer >= 1, got {time_steps!r}")
        steps = int(time_steps)
    else:
        raise InvalidInputError(f"inputs have shape {x.shape}; the graph's input node takes (T, batch, *{shape}) "
                                f"or (batch, *{shape}) with time_steps")
    batch = int(x.shape[1] if x.ndim == len(shape) + 2 else x.shape[0])
    # the float64 (T, batch, ...) array and, while it is checked for NaN/Inf, a temporary of its size
    check_memory(2 * float_input_bytes(steps, batch, math.prod(shape)), f"{steps} time steps of {batch} samples")
    x = x.astype(np.float64)
    if x.ndim == len(shape) + 1:
        x = np.broadcast_to(x, (steps, *x.shape)).copy()
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InvalidInputError(f"inputs of shape {x.shape} hold no time step or no sample")
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"inputs hold {int(x.size - np.isfinite(x).sum())} NaN/Inf value(s)")
    return x


def _flat_argmax(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], -1).argmax(axis=1).astype(np.int64)


def run_float(graph: nir.NIRGraph, backend: str, inputs: np.ndarray, dt: float | None = None,
              record: bool = False) -> RunResult:
    """Run a float backend on prepared inputs (T, batch, *input_shape) (:func:`prepare_inputs`)."""
    chosen = get_backend(backend)
    if chosen.kind != "float":
        raise ValueError(f"backend {backend!r} is a {chosen.kind} backend; use run_fixed")
    result: FloatRun = chosen.run(graph, inputs, dt, True)  # recorded, for the spike counts
    output = np.asarray(result.output)
    counts = {name: int(np.count_nonzero(spikes)) for name, spikes in result.layers.items()}
    return RunResult(backend=backend, output=output, latency=0, predictions=_flat_argmax(output.sum(axis=0)),
                     input_steps=int(inputs.shape[0]), layers=dict(result.layers) if record else {},
                     spike_counts=counts)


def run_fixed(fx_net: FixedPointNetwork, backend: str, inputs: np.ndarray, record: bool = False) -> RunResult:
    """Run a fixed backend on float inputs (T, batch, *input_shape): quantized with the network's input
    scale (:func:`quantize_inputs`), followed by ``latency`` zero steps (docs/fixed-point.md §5.2)."""
    chosen = get_backend(backend)
    if chosen.kind != "fixed":
        raise ValueError(f"backend {backend!r} is a {chosen.kind} backend; use run_float")
    integers = append_zero_steps(quantize_inputs(fx_net, inputs), fx_net.latency)
    result: SimulationResult = chosen.run(fx_net, integers, record)
    output = np.asarray(result.output)
    saturation = {}
    if result.saturation:  # () from a backend that cannot count (§5.6)
        if len(result.saturation) != len(fx_net.layers):
            raise ValueError(f"backend {backend!r} returned saturation counts for {len(result.saturation)} "
                             f"layers; the network has {len(fx_net.layers)}")
        saturation = {layer.name: counts for layer, counts in zip(fx_net.layers, result.saturation)}
    last = fx_net.layers[-1]
    predictions = _flat_argmax(output.sum(axis=0) if last.spiking else output[-1])
    layers, u, v = {}, {}, {}
    if record:
        layers = {layer.name: result.spikes[k] for k, layer in enumerate(fx_net.layers) if layer.spiking}
        u = {layer.name: result.u[k] for k, layer in enumerate(fx_net.layers)}
        v = {layer.name: result.v[k] for k, layer in enumerate(fx_net.layers)}
    counts = {layer.name: int(np.count_nonzero(result.spikes[k])) for k, layer in enumerate(fx_net.layers)
              if layer.spiking}
    return RunResult(backend=backend, output=output, latency=fx_net.latency, predictions=predictions,
                     input_steps=int(inputs.shape[0]), layers=layers, u=u, v=v, spike_counts=counts,
                     saturation=saturation, input_clipped=clipped_inputs(fx_net, inputs))


def input_clip_warning(fx_net: FixedPointNetwork, inputs: Any, clipped: int) -> str | None:
    """The warning for ``clipped`` (> 0) input values above the network's input range (docs/fixed-point.md
    §10.1), naming the range and the compile options that keep the largest input within the 8-bit input
    (§5.3); None when nothing was clipped."""
    if clipped <= 0:
        return None
    x = np.asarray(inputs, dtype=np.float64)
    largest = float(x.max())
    if fx_net.input_scale is None:
        return (f"{clipped} of {x.size} input values exceed the network's integer input range [0, "
                f"{fx_net.input_max}] and were clipped")
    scale = fx_net.input_scale
    fits = SPEC.input_max / largest
    unit = 10.0 ** (math.floor(math.log10(fits)) - 2)  # three significant digits, rounded down
    suggestion = float(f"{math.floor(fits / unit) * unit:.10g}")
    return (f"{clipped} of {x.size} input values exceed the network's input range [0, "
            f"{fx_net.input_max / scale:g}] (input_scale {scale:g}, input_max {fx_net.input_max}) and were "
            f"clipped; inputs up to {largest:g} need --input-range {largest:g} with --input-scale {suggestion:g} "
            f"or less (or calibration data that reach them, --calibrate-on)")


def silent_layer_warnings(result: RunResult, fx_net: FixedPointNetwork | None = None) -> list[str]:
    """One warning per spiking layer of ``result`` that emitted no spike at all (a wrong dt is the usual
    cause: the neurons then integrate too little, or too much leak, to reach threshold). With ``fx_net``,
    a last layer whose thresholds are all at the register's maximum is a readout run as a LIF that is not
    meant to fire (lava-dl netx has no other readout, docs/fixed-point.md §10.5) and is not reported."""
    quiet_readout = None
    if fx_net is not None and fx_net.layers[-1].spiking and np.all(fx_net.layers[-1].vth == SPEC.vth_max):
        quiet_readout = fx_net.layers[-1].name
    return [f"layer {name} produced no spikes: {DT_HINT}" for name, count in result.spike_counts.items()
            if count == 0 and name != quiet_readout]


def compile_for_inputs(graph: nir.NIRGraph, time_steps: int | None, profile: str = "bso", dt: float | None = None,
                       input_scale: float | None = None, weight_bits: int | None = None, scaling: str | None = None,
                       calibration: np.ndarray | None = None, input_range: float | None = None,
                       bias_correction: bool | None = True) -> FixedPointNetwork:
    """:func:`compile_nir` for inputs of ``time_steps`` steps (None: the graph's or the compiler's default).
    scaling: "calibrated" | "worst-case" | None (calibrated when ``calibration``, float (T, batch,
    *input_shape), is given, else worst-case); input_range: the largest float input (§10.1); bias_correction
    (§10.6; None: the default, on)."""
    if scaling is not None and scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; valid: {', '.join(SCALINGS)}")
    return compile_nir(graph, profile=profile, input_scale=input_scale, weight_bits=weight_bits, dt=dt,
                       time_steps=None if time_steps is None else int(time_steps), scaling=scaling,
                       calibration=calibration, input_range=input_range,
                       bias_correction=bias_correction is not False)


def run_graph(model: nir.NIRGraph | FixedPointNetwork | str | os.PathLike, backend: str, inputs: Any,
              profile: str = "bso", dt: float | None = None, time_steps: int | None = None, record: bool = False,
              input_scale: float | None = None, weight_bits: int | None = None, scaling: str | None = None,
              calibration: np.ndarray | None = None, input_range: float | None = None) -> RunResult:
    """Run a NIR graph (or file), or a compiled network, on ``backend`` (a name in :data:`BACKENDS`: "float",
    "sim", "torch", "lava").

    inputs: float values for the graph's input node, (T, batch, *input_shape), or (batch, *input_shape)
    repeated ``time_steps`` times. Fixed backends compile a graph for ``profile`` (with dt, input_scale,
    weight_bits, scaling, calibration, input_range, and T for the readout's saturation bound) first; a compiled
    network runs as it is (the float backend needs the graph). ``record`` keeps every layer's spikes (and
    u, v on fixed backends)."""
    chosen = get_backend(backend)
    if isinstance(model, FixedPointNetwork):
        if chosen.kind == "float":
            fixed = ", ".join(sorted(name for name, other in BACKENDS.items() if other.kind == "fixed"))
            raise ValueError(f"backend {backend!r} runs NIR graphs; a compiled network runs on the fixed "
                             f"backends only ({fixed})")
        return run_fixed(model, backend, prepare_inputs(inputs, model.input_shape, time_steps), record)
    graph = read_graph(model)
    if chosen.kind == "float":
        shape = from_nir(graph, dt=dt).input_shape
        return run_float(graph, backend, prepare_inputs(inputs, shape, time_steps), dt, record)
    x = prepare_inputs(inputs, graph_input_shape(graph), time_steps)
    fx_net = compile_for_inputs(graph, int(x.shape[0]), profile=profile, dt=dt, input_scale=input_scale,
                                weight_bits=weight_bits, scaling=scaling, calibration=calibration,
                                input_range=input_range)
    return run_fixed(fx_net, backend, x, record)


def save_run(result: RunResult, path: str | os.PathLike) -> Path:
    """Write ``result`` to one .npz atomically: ``output``, ``latency``, ``predictions``, and when recorded
    ``spikes/<layer>`` (and ``u/<layer>``, ``v/<layer>`` from fixed backends), and the saturation counts
    ``saturation/<layer>/{v,u,a}`` (int64 (batch, *shape), docs/fixed-point.md §5.6) where counted."""
    arrays: dict[str, np.ndarray] = {"output": result.output, "latency": np.array(result.latency, dtype=np.int64),
                                     "predictions": result.predictions}
    for prefix, table in (("spikes", result.layers), ("u", result.u), ("v", result.v)):
        arrays.update({f"{prefix}/{name}": values for name, values in table.items()})
    for name, counts in result.saturation.items():
        arrays.update({f"saturation/{name}/{event}": np.asarray(values) for event, values in counts._asdict().items()})
    return atomic_write(path, lambda file: np.savez(file, **arrays))
