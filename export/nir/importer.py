"""Build a runnable torch module from any NIR graph: :func:`from_nir`.

A lookup table maps each NIR node type to a small converter that returns an op (:mod:`.ops`). Neuron
nodes become forward-Euler steps at dt (:mod:`.dynamics`); their coefficients come from
:func:`.conversions.euler_coefficients`, i.e. ``decay = 1 - dt/tau`` and ``gain = r * dt/tau``, so graphs
from snnTorch (r = tau/dt, per-step gain 1) and Norse (r = 1, per-step gain dt/tau) both run as their

authors meant. nirtorch is not used: its default Affine mapping drops the bias.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from bso_deploy.errors import InvalidInputError

from .conversions import euler_coefficients
from .executor import NIRExecutor
from .files import read_nir_file
from .metadata import DT, metadata_float, reset_mode
from .ops import AffineOp, Conv2dOp, ElementwiseOp, FlattenOp, NeuronOp, NodeOp, Pool2dOp
from .shapes import conv_padding, pair
from .validate import NEURON_TYPE_NAMES, check_graph


@dataclass(frozen=True)
class ImportContext:
    """What converters need besides the node: dt (s; None when the graph did not need one), dtype, and
    the graph-level reset mode used for neuron nodes without their own ``reset`` metadata."""

    dt: float | None
    dtype: torch.dtype
    default_reset: str | None


def _io(node: nir.Input | nir.Output, context: ImportContext) -> NodeOp:
    return NodeOp()


def _affine(node: nir.Affine | nir.Linear, context: ImportContext) -> NodeOp:
    return AffineOp(node.weight, getattr(node, "bias", None), context.dtype)


def _conv2d(node: nir.Conv2d, context: ImportContext) -> NodeOp:
    return Conv2dOp(node.weight, node.bias, pair(node.stride, "stride"), conv_padding(node),
                    pair(node.dilation, "dilation"), int(np.asarray(node.groups)), context.dtype)


def _pool(node: nir.AvgPool2d | nir.SumPool2d, context: ImportContext) -> NodeOp:
    kernel = pair(node.kernel_size, "kernel_size")
    stride = kernel if node.stride is None else pair(node.stride, "stride")
    return Pool2dOp(kernel, stride, pair(node.padding, "padding"), summed=isinstance(node, nir.SumPool2d))


def _flatten(node: nir.Flatten, context: ImportContext) -> NodeOp:
    return FlattenOp(int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim)))


def _scale(node: nir.Scale, context: ImportContext) -> NodeOp:
    return ElementwiseOp(node.scale, threshold=False, dtype=context.dtype)


def _threshold(node: nir.Threshold, context: ImportContext) -> NodeOp:
    return ElementwiseOp(node.threshold, threshold=True, dtype=context.dtype)


def _leaky(tau, r, v_leak, dt: float) -> dict:
    coefficients = euler_coefficients(tau, r, dt)
    return {"decay": coefficients.decay, "leak": coefficients.leak, "v_leak": np.asarray(v_leak, np.float64),
            "gain": coefficients.gain}


def _integrating(r, dt: float) -> dict:
    """dv/dt = r I: decay 1, no leak, gain dt * r (IF and Integrator)."""
    r = np.asarray(r, np.float64)
    return {"decay": np.ones_like(r), "leak": np.zeros_like(r), "v_leak": np.zeros_like(r), "gain": dt * r}


def _synapse(tau_syn, w_in, dt: float) -> dict:
    """tau_syn dI/dt = -I + w_in S: gain w_in * dt / tau_syn."""
    return _leaky(tau_syn, w_in, np.zeros_like(np.asarray(tau_syn, np.float64)), dt)


def _firing(node: Any, name: str, context: ImportContext) -> tuple[dict, bool]:
    threshold = np.asarray(node.v_threshold, np.float64)
    v_reset = np.zeros_like(threshold) if node.v_reset is None else np.asarray(node.v_reset, np.float64)
    mode = reset_mode(node.metadata or {}, context.default_reset, f"node {name!r}")
    return {"v_threshold": threshold, "v_reset": v_reset}, mode == "subtract"


def _lif(node: nir.LIF, context: ImportContext, name: str) -> NodeOp:
    firing, subtract = _firing(node, name, context)
    return NeuronOp(_leaky(node.tau, node.r, node.v_leak, context.dt), None, firing, subtract, context.dtype)


def _cuba_lif(node: nir.CubaLIF, context: ImportContext, name: str) -> NodeOp:
    firing, subtract = _firing(node, name, context)
    return NeuronOp(_leaky(node.tau_mem, node.r, node.v_leak, context.dt),
                    _synapse(node.tau_syn, node.w_in, context.dt), firing, subtract, context.dtype)


def _cuba_li(node: nir.CubaLI, context: ImportContext, name: str) -> NodeOp:
    return NeuronOp(_leaky(node.tau_mem, node.r, node.v_leak, context.dt),
                    _synapse(node.tau_syn, node.w_in, context.dt), None, False, context.dtype)


def _if(node: nir.IF, context: ImportContext, name: str) -> NodeOp:
    firing, subtract = _firing(node, name, context)
    return NeuronOp(_integrating(node.r, context.dt), None, firing, subtract, context.dtype)


def _li(node: nir.LI, context: ImportContext, name: str) -> NodeOp:
    return NeuronOp(_leaky(node.tau, node.r, node.v_leak, context.dt), None, None, False, context.dtype)


def _integrator(node: nir.I, context: ImportContext, name: str) -> NodeOp:
    return NeuronOp(_integrating(node.r, context.dt), None, None, False, context.dtype)


# Stateless converters take (node, context); neuron converters also take the node name (for errors).
STATELESS_CONVERTERS: dict[type, Callable[[Any, ImportContext], NodeOp]] = {
    nir.Input: _io, nir.Output: _io, nir.Affine: _affine, nir.Linear: _affine, nir.Conv2d: _conv2d,
    nir.AvgPool2d: _pool, nir.SumPool2d: _pool, nir.Flatten: _flatten, nir.Scale: _scale,
    nir.Threshold: _threshold,
}
NEURON_CONVERTERS: dict[type, Callable[[Any, ImportContext, str], NodeOp]] = {
    nir.LIF: _lif, nir.CubaLIF: _cuba_lif, nir.CubaLI: _cuba_li, nir.IF: _if, nir.LI: _li, nir.I: _integrator,
}
SUPPORTED_NODE_TYPES = tuple(sorted(t.__name__ for t in (*STATELESS_CONVERTERS, *NEURON_CONVERTERS)))
if {t.__name__ for t in NEURON_CONVERTERS} != set(NEURON_TYPE_NAMES):  # the cycle rule must know every neuron
    raise ImportError("validate.NEURON_TYPE_NAMES is out of step with importer.NEURON_CONVERTERS")


# The time step each third-party exporter assumes but does not write (docs/nir.md, "Third-party exporters").
EXPORTER_DT_TEXT = ("exporters assume: Sinabs IAF/IF graphs dt=1 (one step per unit); snnTorch dt=1e-4; "
                    "Norse 1.1.0 dt=1e-6 for a network run at Norse's dt=1e-3 (it writes tau*dt as tau; "
                    "in general Norse's dt squared); Rockpool dt=1e-3 (its modules' default dt)")


def resolve_dt(dt: float | None, graph: nir.NIRGraph, nodes: dict[str, nir.NIRNode]) -> float | None:
    """dt from the argument, else the graph's metadata, else the neuron nodes' metadata (which must agree).

    Returns None only when the graph has no neuron node (nothing depends on dt); otherwise a missing dt is
    a ValueError asking for it."""
    recorded = None
    if DT in (graph.metadata or {}):
        recorded = metadata_float(graph.metadata[DT], "graph metadata 'dt'")
    else:
        node_dts = {name: metadata_float(node.metadata[DT], f"node {name!r} metadata 'dt'")
                    for name, node in nodes.items() if DT in (node.metadata or {})}
        if len(set(node_dts.values())) > 1:
            raise InvalidInputError(f"neuron nodes record different time steps {node_dts}; pass dt= explicitly")
        recorded = next(iter(node_dts.values()), None)
    if dt is not None:
        dt = metadata_float(dt, "dt")
        if dt <= 0:
            raise InvalidInputError(f"dt must be > 0 seconds, got {dt}")
        if recorded is not None and dt != recorded:
            warnings.warn(f"dt={dt} overrides the dt={recorded} recorded in the graph's metadata", UserWarning,
                          stacklevel=3)
        return dt
    if recorded is not None:
        if recorded <= 0:
            raise InvalidInputError(f"the graph's metadata records dt={recorded}; it must be > 0 seconds")
        return recorded
    neurons = [name for name, node in nodes.items() if type(node) in NEURON_CONVERTERS]
    if neurons:
        raise InvalidInputError(f"the graph records no time step (metadata 'dt') and its neuron nodes {neurons[:5]} "
                         f"need one: pass dt= in seconds; {EXPORTER_DT_TEXT}")
    return None


def from_nir(graph_or_path: nir.NIRGraph | str | os.PathLike, dt: float | None = None,
             dtype: torch.dtype = torch.float32) -> NIRExecutor:
    """Build a step-by-step torch module (:class:`.executor.NIRExecutor`) from a NIR graph or file.

    dt (seconds per step): the argument, else the graph's metadata ``dt``, else a ValueError asking for
    it. Spiking nodes reset to v_reset unless their metadata (or the graph's) says ``reset="subtract"``.
    Raises FileNotFoundError for a missing file and ValueError, naming the node and field, for unreadable
    files, unsupported node types, missing fields, NaN/Inf parameters and inconsistent shapes."""
    if isinstance(graph_or_path, (str, os.PathLike)):
        graph = read_nir_file(Path(graph_or_path))
    elif isinstance(graph_or_path, nir.NIRGraph):
        graph = graph_or_path
    else:
        raise TypeError(f"from_nir takes a nir.NIRGraph or a path, not {type(graph_or_path).__name__}")
    checked = check_graph(graph)
    nodes = checked.nodes
    context = ImportContext(dt=resolve_dt(dt, graph, nodes), dtype=dtype,
                            default_reset=reset_mode(graph.metadata or {}, None, "graph"))
    ops: dict[str, NodeOp] = {}
    for name, node in nodes.items():
        try:
            if type(node) in NEURON_CONVERTERS:
                ops[name] = NEURON_CONVERTERS[type(node)](node, context, name)
            else:
                ops[name] = STATELESS_CONVERTERS[type(node)](node, context)
        except ValueError as error:
            raise InvalidInputError(f"node {name!r} ({type(node).__name__}): {error}") from error
    return NIRExecutor(ops, checked, context.dt)
