"""What the compiler hands to the quantization, per layer (docs/fixed-point.md §10): :class:`FloatLayer`, one
float layer read from a NIR graph with the neuron's input gain folded in, and :class:`LayerOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RangeError

__all__ = ["FloatLayer", "LayerOptions", "layer_error", "per_row"]


@dataclass(frozen=True)
class FloatLayer:
    """One layer of a float network, read from a NIR graph, with the neuron's input gain folded in.

    The neuron computes ``v = decay v + I`` (``I = W x + b`` after pooling; for CubaLIF the current is
    first filtered, ``i = syn_decay i + I``, and v is driven by the new i), fires when ``v > threshold`` and
    resets by ``reset``. Per-neuron arrays have the layer's output shape. Binary layers carry ``signs``
    (weight's shape, +-1) and ``alpha`` (per output row/channel, > 0) with ``weight = signs * alpha``.
    tau_steps / tau_syn_steps are time constants in steps (inf: no leak; tau_syn_steps None: no current).
    """

    name: str
    nodes: tuple[str, ...]
    kind: str
    input_shape: tuple[int, ...]
    pool: tuple[int, int]
    weight: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray | None  # None: non-spiking readout
    tau_steps: float
    tau_syn_steps: float | None
    reset: str
    signs: np.ndarray | None = None
    alpha: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_shape: tuple[int, ...] = ()
    bias_note: str = ""  # how the bias was mapped when not exactly (CubaLIF)
    note: str = ""  # why the layer is compiled otherwise than its graph says (a binary readout of uneven alpha)
    recurrent_weight: np.ndarray | None = None  # (n, n): the layer's own spikes of the previous step, gain folded

    @property
    def binary(self) -> bool:
        return self.signs is not None

    @property
    def spiking(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class LayerOptions:
    """What the compiler passes down for every layer: input_scale (s_in of layer 0), input_max (max integer
    input of this layer), weight_bits (mantissa bits of full-precision weights and of a binary magnitude),
    readout_steps (steps a layer without leak, the readout or IF, must sum without saturating), profile name,
    first (layer 0), first_input_step (k + 1 for layer k: the step its first input arrives, §4.8, §5.1),
    netx_compatible (only what lava-dl netx can carry: no weight exponent, bias exponent 6, §10.5),
    current_peak / voltage_peak (calibrated scaling, §10.6: per-neuron max |i| and |v| of the float layer on
    the calibration inputs, output shape; None: worst-case scaling, §10.3) and calibration_margin (the factor
    of headroom kept above those peaks)."""

    input_scale: float
    input_max: int
    weight_bits: int
    readout_steps: int
    profile: str
    first: bool
    first_input_step: int
    netx_compatible: bool = False
    current_peak: np.ndarray | None = None
    voltage_peak: np.ndarray | None = None
    calibration_margin: float = 2.0
    drive_rate: np.ndarray | None = None  # calibrated: per-neuron fraction of steps with a nonzero sum (§10.6)

    @property
    def calibrated(self) -> bool:
        return self.voltage_peak is not None


def per_row(values: np.ndarray, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Per-row (output unit / channel) values broadcast to the layer's output shape."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape((-1,) + (1,) * (len(shape) - 1)) if kind == "conv" else values


def layer_error(layer: FloatLayer, parameter: str, message: str) -> RangeError:
    """The error for ``parameter`` of ``layer``, naming the layer and its NIR nodes: a value that does not fit
    its fixed-point range (a RangeError, so a ValueError)."""
    return RangeError(f"layer {layer.name!r} (NIR nodes {', '.join(layer.nodes)}): {parameter} {message}")
