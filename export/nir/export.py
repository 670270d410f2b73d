"""Export a bso-deploy :class:`~bso_deploy.network.SpikingNetwork` to a NIR graph: :func:`to_nir`.

The network's layers are grouped into export units (a synapse with the BatchNorm that follows it, or a
single layer); a lookup table maps each unit's module type to a small converter returning one NIR node.
Decisions (docs/nir.md explains them):

- BatchNorm is folded (eval-mode running statistics) into the synapse before it. With
  ``scale = gamma / sqrt(var + eps)`` per output unit: ``W' = scale * W``, ``b' = scale * b + beta -
  scale * mean``. For a binary layer ``W' = signs * alpha`` exactly, ``alpha = |scale|`` and ``signs`` the
  +-1 weight with rows of negative scale flipped; both go into the node's metadata.
- LIF: ``tau = dt * tau_steps`` and ``r = tau / dt`` (per-step input gain 1; :mod:`.conversions`),
  ``v_leak = 0``, ``v_threshold = theta``, ``v_reset = 0``. NIR resets to v_reset; a subtractive reset is
  recorded as node metadata ``reset="subtract"`` and announced by a :class:`NIRExportWarning`.
- The last node (the classifier's current, our logits) feeds the Output node.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from bso_deploy._version import __version__
from bso_deploy.layers import SYNAPSE_TYPES, is_binary_layer
from bso_deploy.network import SpikingNetwork
from bso_deploy.neuron import LIF

from . import metadata as keys
from .conversions import lif_tau_r_for_steps
from .metadata import DEFAULT_DT, NIRExportWarning

SURROGATE_NAME = "sigmoid"  # bso_deploy.neuron's surrogate; recorded for tools that retrain


@dataclass(frozen=True)
class ExportUnit:
    """One module (plus a folded BatchNorm) with its per-sample input and output shapes."""

    index: int
    module: nn.Module
    batchnorm: nn.BatchNorm1d | nn.BatchNorm2d | None
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class ExportContext:
    dt: float
    dtype: np.dtype  # dtype of exported weights (the model's); neuron parameters are always float64


def _numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().cpu().to(torch.float64).numpy()


def _fold(unit: ExportUnit, context: ExportContext) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Return (weight, bias or None, metadata) with the unit's BatchNorm folded in (module docstring)."""
    weight, bias = _numpy(unit.module.weight), _numpy(unit.module.bias)
    meta: dict[str, Any] = {keys.SOURCE_LAYER: f"layers.{unit.index}", keys.BINARY: is_binary_layer(unit.module),
                            keys.FOLDED_BATCHNORM: unit.batchnorm is not None}
    scale = np.ones(weight.shape[0])
    if unit.batchnorm is not None:
        bn = unit.batchnorm
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError(f"layer {unit.index + 1} ({type(bn).__name__}) keeps no running statistics "
                             "(track_running_stats=False); it cannot be folded for export")
        gamma = np.ones(weight.shape[0]) if bn.weight is None else _numpy(bn.weight)
        beta = np.zeros(weight.shape[0]) if bn.bias is None else _numpy(bn.bias)
        # scale as torch's eval-mode kernel forms it: gamma * (1 / sqrt(var + eps))
        scale = gamma * (1.0 / np.sqrt(_numpy(bn.running_var) + bn.eps))
        bias = (0.0 if bias is None else bias) * scale + (beta - _numpy(bn.running_mean) * scale)
    row = (-1,) + (1,) * (weight.ndim - 1)
    if meta[keys.BINARY]:
        alpha = np.abs(scale).astype(context.dtype)
        signs = (weight * np.where(scale < 0, -1.0, 1.0).reshape(row)).astype(np.int8)
        meta.update({keys.ALPHA: alpha, keys.SIGNS: signs})
        weight = signs.astype(context.dtype) * alpha.reshape(row)  # exactly +-alpha in the export dtype
    else:
        weight = (weight * scale.reshape(row)).astype(context.dtype)
    return weight, None if bias is None else bias.astype(context.dtype), meta


def _linear(unit: ExportUnit, context: ExportContext) -> tuple[str, nir.NIRNode]:
    weight, bias, meta = _fold(unit, context)
    if bias is None:
        return "linear", nir.Linear(weight=weight, metadata=meta)
    return "affine", nir.Affine(weight=weight, bias=bias, metadata=meta)


def _conv2d(unit: ExportUnit, context: ExportContext) -> tuple[str, nir.NIRNode]:
    conv = unit.module
    if conv.padding_mode != "zeros":
        raise ValueError(f"layer {unit.index} (Conv2d) uses padding_mode={conv.padding_mode!r}; NIR Conv2d "
                         "pads with zeros only")
    weight, bias, meta = _fold(unit, context)
    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=context.dtype)
    padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    return "conv", nir.Conv2d(input_shape=unit.input_shape[1:], weight=weight, stride=tuple(conv.stride),
                              padding=padding, dilation=tuple(conv.dilation), groups=conv.groups, bias=bias,
                              metadata=meta)


def _lif(unit: ExportUnit, context: ExportContext) -> tuple[str, nir.NIRNode]:
    params = unit.module.params
    tau, r = lif_tau_r_for_steps(params.tau, context.dt)
    shape = unit.output_shape

    def full(value: float) -> np.ndarray:
        return np.full(shape, value, dtype=np.float64)

    meta = {keys.SOURCE_LAYER: f"layers.{unit.index}", keys.DT: context.dt, keys.RESET: params.reset,
            keys.TAU_STEPS: float(params.tau), keys.SURROGATE: SURROGATE_NAME,
            keys.SURROGATE_ALPHA: float(params.alpha)}
    return "lif", nir.LIF(tau=full(tau), r=full(r), v_leak=full(0.0), v_threshold=full(params.threshold),
                          v_reset=full(0.0), metadata=meta)


def _flatten(unit: ExportUnit, context: ExportContext) -> tuple[str, nir.NIRNode]:
    def sample_dim(dim: int) -> int:  # torch counts the batch dimension, NIR does not
        if dim == 0:
            raise ValueError(f"layer {unit.index} (Flatten) flattens the batch dimension; NIR cannot express it")
        return dim - 1 if dim > 0 else dim

    flatten = unit.module
    return "flatten", nir.Flatten(input_type={"input": np.array(unit.input_shape)},
                                  start_dim=sample_dim(flatten.start_dim), end_dim=sample_dim(flatten.end_dim),
                                  metadata={keys.SOURCE_LAYER: f"layers.{unit.index}"})


def _avgpool(unit: ExportUnit, context: ExportContext) -> tuple[str, nir.NIRNode]:
    pool = unit.module
    padding = np.broadcast_to(np.asarray(pool.padding), (2,))
    if pool.ceil_mode or pool.divisor_override is not None or (np.any(padding) and not pool.count_include_pad):
        raise ValueError(f"layer {unit.index} (AvgPool2d): ceil_mode, divisor_override and "
                         "count_include_pad=False have no NIR equivalent")
    kernel = np.broadcast_to(np.asarray(pool.kernel_size), (2,))
    stride = kernel if pool.stride is None else np.broadcast_to(np.asarray(pool.stride), (2,))
    return "avgpool", nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                                    padding=np.array(padding), metadata={keys.SOURCE_LAYER: f"layers.{unit.index}"})


EXPORTERS: dict[type, Callable[[ExportUnit, ExportContext], tuple[str, nir.NIRNode]]] = {
    nn.Linear: _linear, nn.Conv2d: _conv2d, LIF: _lif, nn.Flatten: _flatten, nn.AvgPool2d: _avgpool,
}


def _exporter_for(module: nn.Module, index: int) -> Callable:
    for cls in type(module).__mro__:
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    names = ", ".join(t.__name__ for t in EXPORTERS)
    raise ValueError(f"layer {index} ({type(module).__name__}) has no NIR exporter; exportable: {names}, "
                     "BatchNorm after a synapse, Identity")


def _layers(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, SpikingNetwork):
        return list(model.layers)
    if isinstance(model, nn.Sequential):
        return list(model)
    raise TypeError(f"to_nir exports a SpikingNetwork or an nn.Sequential of its layers, not {type(model).__name__}")


def _input_shape(layers: list[nn.Module], input_shape: Sequence[int] | None) -> tuple[int, ...]:
    if input_shape is not None:
        shape = tuple(int(size) for size in input_shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"input_shape must be a non-empty tuple of sizes >= 1, got {input_shape!r}")
        return shape
    first = next((layer for layer in layers if not isinstance(layer, nn.Identity)), None)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise ValueError(f"cannot infer the input shape of a network starting with {type(first).__name__}; "
                     "pass input_shape=(channels, height, width) (per sample, without batch)")


def export_units(model: nn.Module, input_shape: Sequence[int] | None = None) -> list[ExportUnit]:
    """Group the layers into export units and work out every unit's per-sample shapes (by probing a zero
    input through the shape-changing layers)."""
    layers = _layers(model)
    shape = _input_shape(layers, input_shape)
    parameter = next(model.parameters(), None)
    probe = torch.zeros((1, *shape), dtype=parameter.dtype if parameter is not None else torch.float32,
                        device=parameter.device if parameter is not None else None)
    units: list[ExportUnit] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, nn.Identity):
            index += 1
            continue
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise ValueError(f"layer {index} ({type(layer).__name__}) does not follow a synapse; only a BatchNorm "
                             "right after a Linear/Conv2d can be folded into it")
        batchnorm = None
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, SYNAPSE_TYPES) and isinstance(following, (nn.BatchNorm1d, nn.BatchNorm2d)):
            batchnorm = following
        _exporter_for(layer, index)
        before = tuple(probe.shape[1:])
        if not isinstance(layer, LIF):
            try:
                with torch.no_grad():
                    probe = layer(probe)
            except RuntimeError as error:
                raise ValueError(f"layer {index} ({type(layer).__name__}) rejects per-sample input shape {before}: "
                                 f"{str(error).splitlines()[0]}") from error
        units.append(ExportUnit(index, layer, batchnorm, before, tuple(probe.shape[1:])))
        index += 2 if batchnorm is not None else 1
    if not units:
        raise ValueError("the network has no exportable layer")
    return units


def to_nir(model: nn.Module, dt: float = DEFAULT_DT, input_shape: Sequence[int] | None = None,
           metadata: Mapping[str, Any] | None = None) -> nir.NIRGraph:
    """Export ``model`` (a SpikingNetwork, evaluated with BatchNorm running statistics) to a NIR graph.

    dt: seconds per time step (recorded in metadata; sets tau = dt * tau_steps). input_shape: per-sample
    input shape, needed unless the first layer is a Linear. metadata: extra graph metadata (for example
    ``training_method``), HDF5-serialisable values only. Warns with :class:`NIRExportWarning` when a LIF
    layer uses the subtractive reset, which NIR cannot express without the metadata."""
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt}")
    units = export_units(model, input_shape)
    parameter = next(model.parameters(), None)
    dtype = np.dtype(np.float64) if parameter is not None and parameter.dtype == torch.float64 else \
        np.dtype(np.float32)
    context = ExportContext(dt=dt, dtype=dtype)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(units[0].input_shape))}
    for unit in units:
        kind, node = _exporter_for(unit.module, unit.index)(unit, context)
        nodes[f"{kind}_{unit.index}"] = node
    nodes["output"] = nir.Output(output_type=np.array(units[-1].output_shape))
    names = list(nodes)
    edges = list(itertools.pairwise(names))
    resets = sorted({unit.module.params.reset for unit in units if isinstance(unit.module, LIF)})
    graph_meta: dict[str, Any] = {keys.TOOLKIT: "bso-deploy", keys.TOOLKIT_VERSION: __version__, keys.DT: dt,
                                  keys.READOUT: keys.READOUT_CURRENT}
    if len(resets) == 1:  # with mixed modes only the nodes say which is which
        graph_meta[keys.RESET] = resets[0]
    if metadata:
        keys.check_serialisable(metadata, "to_nir metadata")
        graph_meta.update(metadata)
    subtractive = [name for name, node in nodes.items()
                   if isinstance(node, nir.LIF) and node.metadata[keys.RESET] == "subtract"]
    if subtractive:
        warnings.warn(NIRExportWarning(
            f"LIF nodes {subtractive} use the subtractive reset (v -= v_threshold), which NIR cannot express: "
            "NIR resets to v_reset. Their metadata says reset='subtract'; bso-deploy's importer honours it, a "
            "consumer that ignores metadata will reset to zero instead."), stacklevel=2)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_meta, type_check=True)
