"""Bit-exact NumPy simulator of the fixed-point semantics in docs/fixed-point.md.

The arithmetic is in pure ``*_int`` step functions that never mutate their inputs
(``hardware/step_functions.py``, re-exported here); they are the reference, and :func:`simulate_stepwise` is
the plain loop over time steps and layers that calls them (docs/fixed-point.md §5.1). :func:`simulate`
computes the same numbers faster (a fused path, checked against :func:`simulate_stepwise` by
tests/hardware/test_fused.py) and falls back to the loop where the fused path cannot prove itself exact
or a layer is recurrent (§4.9). The torch reference (``hardware/torch_reference.py``) implements the same
document independently; the two share only ``hardware/spec.py``.

Connections (dense and conv) are computed as float matrix products, which are exact here: every operand
and every partial sum is an integer whose magnitude is bounded by ``fan_in * max|w| * max|x|``, and
:func:`synapse_params` picks float32 when that bound is below 2**24 and float64 when it is below 2**53
(docs/fixed-point.md §1.1). Integer matmuls in NumPy do not use BLAS and are several times slower.

The fused path (its arithmetic and its bounds) is ``hardware/fused.py``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidInputError, RangeError
from ..limits import check_memory, simulation_bytes
from .fused import FusedLayer, LayerWork, allocate_outputs, block_samples, fused_plans, prepare_fused, run_fused
from .input_checks import as_array
from .network import FixedPointNetwork, LayerSaturation, SimulationResult
from .spec import SPEC, FixedPointSpec
from .step_functions import (
    NeuronEvents,
    NeuronParams,
    NeuronState,
    SynapseParams,
    bias_int,
    connect_float,
    connect_int,
    dense_weight_int,
    lif_step_events_int,
    lif_step_int,
    neuron_params,
    recurrent_synapse_params,
    saturate_v_int,
    shift_int,
    sum_pool_int,
    synapse_params,
    synapse_step_int,
    trunc_decay_int,
    wrap_u_int,
)

__all__ = [
    "NeuronEvents",
    "NeuronParams",
    "NeuronState",
    "Simulator",
    "SynapseParams",
    "bias_int",
    "connect_float",
    "connect_int",
    "dense_weight_int",
    "latency",
    "lif_step_events_int",
    "lif_step_int",
    "neuron_params",
    "recurrent_synapse_params",
    "saturate_v_int",
    "shift_int",
    "simulate",
    "simulate_stepwise",
    "sum_pool_int",
    "synapse_params",
    "synapse_step_int",
    "trunc_decay_int",
    "wrap_u_int",
]


def latency(fx_net: FixedPointNetwork) -> int:
    """Steps from a network input to the last layer's neurons (docs/fixed-point.md §5.2)."""
    return fx_net.latency


def _checked_inputs(fx_net: FixedPointNetwork, inputs: np.ndarray, spec: FixedPointSpec,
                    record: bool) -> np.ndarray:
    inputs = as_array(inputs, "inputs")
    if inputs.dtype.kind not in "iub":
        raise InvalidInputError(f"inputs must be integers in [0, {spec.input_max}] (docs/fixed-point.md §5.3), got "
                                f"dtype {inputs.dtype}; quantize float inputs first")
    if inputs.ndim != 2 + len(fx_net.input_shape) or tuple(inputs.shape[2:]) != fx_net.input_shape:
        raise InvalidInputError(f"inputs must have shape (T, batch, *{fx_net.input_shape}), got {inputs.shape}")
    steps, batch = inputs.shape[:2]
    check_memory(simulation_bytes(steps, batch, math.prod(fx_net.input_shape),
                                  [layer.num_neurons for layer in fx_net.layers], record),
                 f"simulating {steps} time steps of {batch} samples")
    if inputs.size and (inputs.min() < 0 or inputs.max() > spec.input_max):
        raise RangeError(f"inputs must lie in [0, {spec.input_max}] (docs/fixed-point.md §5.3), got values in "
                         f"[{inputs.min()}, {inputs.max()}]")
    return inputs


def simulate_stepwise(fx_net: FixedPointNetwork, inputs: np.ndarray, record: bool = False) -> SimulationResult:
    """:func:`simulate` as the plain loop over steps and layers (docs/fixed-point.md §5.1) that calls the
    ``*_int`` step functions: the reference the fused path of :func:`simulate` is tested against."""
    spec = SPEC
    inputs = _checked_inputs(fx_net, inputs, spec, record).astype(np.int64)
    steps, batch = inputs.shape[:2]
    layers = fx_net.layers
    input_bounds = [spec.input_max] + [1] * (len(layers) - 1)
    synapses = [synapse_params(layer, bound, spec) for layer, bound in zip(layers, input_bounds)]
    recurrents = [recurrent_synapse_params(layer, spec) for layer in layers]
    neurons = [neuron_params(layer, spec) for layer in layers]
    shapes = [(batch, *layer.output_shape) for layer in layers]
    states = [NeuronState(np.zeros(shape, np.int64), np.zeros(shape, np.int64)) for shape in shapes]
    pending = [np.zeros(shape, np.int64) for shape in shapes]  # delay buffers (§4.8)
    spikes = [np.zeros((steps, *shape), np.int8) for shape in shapes]
    record_u = [np.zeros((steps, *shape), np.int64) for shape in shapes] if record else []
    record_v = [np.zeros((steps, *shape), np.int64) for shape in shapes] if record else []
    output_v = np.zeros((steps, *shapes[-1]), np.int64)
    counts = [LayerSaturation(*(np.zeros(shape, np.int64) for _ in LayerSaturation._fields)) for shape in shapes]
    for t in range(steps):
        x = inputs[t]
        for k in range(len(layers)):
            a = pending[k]
            if t + 1 < steps:  # a sum computed at the last step would only be delivered after the run
                pending[k] = synapse_step_int(x, synapses[k])
            fired, states[k], events = lif_step_events_int(a, states[k], neurons[k], t, spec)
            for count, event in zip(counts[k], events):  # §5.6
                count += event
            if recurrents[k] is not None and t + 1 < steps:  # a(t + 1) = a_ff(t + 1) + a_rec(t + 1) (§4.9)
                pending[k] = pending[k] + synapse_step_int(fired, recurrents[k])
            spikes[k][t] = fired
            if record:
                record_u[k][t] = states[k].u
                record_v[k][t] = states[k].v
            x = fired
        output_v[t] = states[-1].v
    output = spikes[-1].astype(np.int64) if layers[-1].spiking else output_v
    return SimulationResult(spikes=tuple(spikes), output=output, u=tuple(record_u), v=tuple(record_v),
                            saturation=tuple(counts))


class Simulator:
    """:func:`simulate` for repeated runs of one network: ``Simulator(fx_net).run(inputs, record)`` gives
    the same results and keeps the per-layer constants of the fused path and its working memory from one run
    to the next (for the same T and block sizes), as ``TorchReference`` keeps its tensors. Not thread-safe."""

    def __init__(self, fx_net: FixedPointNetwork) -> None:
        self.fx_net = fx_net
        self._steps: int | None = None
        self._plans: list[FusedLayer] | None = None
        self._works: dict[int, list[LayerWork]] = {}  # per block size, for self._steps

    def _prepare(self, steps: int, spec: FixedPointSpec) -> list[FusedLayer] | None:
        if self._steps != steps:
            self._steps, self._plans, self._works = steps, fused_plans(self.fx_net, steps, spec), {}
        return self._plans

    def _block_works(self, steps: int, batch: int) -> list[LayerWork]:
        if batch not in self._works:
            if len(self._works) > 1:  # a run needs at most two block sizes: drop the others' memory
                self._works.clear()
            self._works[batch] = prepare_fused(self.fx_net, self._plans, steps, batch)
        return self._works[batch]

    def run(self, inputs: np.ndarray, record: bool = False) -> SimulationResult:
        """Same contract as :func:`simulate`: the batch runs in blocks of :func:`~.fused.block_samples`
        samples into the arrays of the whole result."""
        spec = SPEC
        inputs = _checked_inputs(self.fx_net, inputs, spec, record)
        steps, batch = inputs.shape[:2]
        plans = self._prepare(steps, spec) if steps and batch else None
        if plans is None:
            return simulate_stepwise(self.fx_net, inputs, record)
        outputs = allocate_outputs(self.fx_net, steps, batch, record)
        block = block_samples(self.fx_net, batch)
        for start in range(0, batch, block):
            stop = min(batch, start + block)
            run_fused(self.fx_net, plans, self._block_works(steps, stop - start), inputs[:, start:stop],
                      outputs.block(start, stop), spec)
        return outputs.result()


def simulate(fx_net: FixedPointNetwork, inputs: np.ndarray, record: bool = False) -> SimulationResult:
    """Run ``fx_net`` on ``inputs`` (T, batch, *input_shape) integers in [0, 255] for exactly T steps
    (docs/fixed-point.md §5). Append ``latency(fx_net)`` zero steps to flush the delays (§5.2).

    Returns spikes per layer, the output (§5.4) and, with ``record=True``, u and v per layer (§5.5). The
    result equals :func:`simulate_stepwise`'s; the fused path (``hardware/fused.py``) runs unless a layer's bounds
    exceed float64's exact range, where the step loop runs instead. :class:`Simulator` is the same for
    repeated runs of one network."""
    return Simulator(fx_net).run(inputs, record)
