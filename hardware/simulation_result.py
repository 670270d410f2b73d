"""What a fixed-point backend returns for a run (docs/fixed-point.md §5.4 - §5.6): :class:`SimulationResult`
and, per layer, its :class:`LayerSaturation` counts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["LayerSaturation", "SimulationResult"]


class LayerSaturation(NamedTuple):
    """Where one layer left the range its registers hold, counted per neuron over a run
    (docs/fixed-point.md §5.6); each field is int64 (batch, *shape), the number of steps at which:

    v: the clip of §3.3 changed v (v saturated); u: the wrap of §3.2 changed u (u wrapped);
    a: the synaptic input delivered left +-(2**15 - 1), the range in which Lava's model is exact (§8).
    """

    v: np.ndarray
    u: np.ndarray
    a: np.ndarray

    def totals(self) -> dict[str, int]:
        """Neuron-steps and distinct neurons (over the batch) per event: ``{"v_steps", "v_neurons", ...}``."""
        result = {}
        for name, counts in zip(self._fields, self):
            result[f"{name}_steps"] = int(counts.sum())
            result[f"{name}_neurons"] = int(np.count_nonzero(counts))
        return result


class SimulationResult(NamedTuple):
    """What a fixed-point backend returns for inputs of T steps (docs/fixed-point.md §5.4 - §5.6).

    spikes: per layer, (T, batch, *shape) int8 0/1 (all zero for a non-spiking layer).
    output: (T, batch, *output_shape) int64: the last layer's spikes, or its v if it does not spike.
    u, v:   per layer, (T, batch, *shape) int64 after reset, when recorded; empty tuples otherwise.
    saturation: per layer, a :class:`LayerSaturation` (§5.6); an empty tuple from a backend that cannot
    count (Lava's built-in processes).
    """

    spikes: tuple[np.ndarray, ...]
    output: np.ndarray
    u: tuple[np.ndarray, ...]
    v: tuple[np.ndarray, ...]
    saturation: tuple[LayerSaturation, ...] = ()
