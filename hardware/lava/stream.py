"""The engine of profile ``bso`` and of the float graph on Lava: bso-deploy's own processes, streamed.

:class:`StreamEngine` builds, per layer, a synapse process (:class:`BinarySynapse` for binary layers,
:class:`FullPrecisionSynapse` otherwise, and one more for a recurrent layer's own synapse) and a
:class:`BsoNeuron` (``bso_deploy.hardware.lava.processes``), all restarting every ``steps`` steps; the network
input enters through Lava's ``Injector``, every neuron's ``probe_out`` (and under ``fixed_pt`` its
``saturation_out``) leaves through an ``Extractor``; one Lava run per chunk of whole samples (docs/lava.md).
:class:`~bso_deploy.hardware.lava.deploy.LavaNetwork` drives it.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..network import FixedPointNetwork
from ..spec import SPEC
from .compat import ensure_lava_importable
from .workers import WorkerGuard, end_workers

__all__ = ["CHANNEL_BYTES", "CHANNEL_STEPS", "StreamEngine"]

CHANNEL_BYTES = 8 << 20  # shared memory per Extractor channel, allocated up front: bounds the steps of one Lava run
# ... and at most this many steps: Lava makes one array view per buffered step when a run starts, in the host and
# in the worker (a small network's 8 MiB held ~87,000 steps: ~0.4 s per channel per start); more steps run as
# several Lava runs of whole samples on the same runtime.
CHANNEL_STEPS = 1 << 13


def _lava() -> SimpleNamespace:
    ensure_lava_importable()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.injector import Injector, PyLoihiInjectorModel
    from lava.proc.io.utils import ChannelConfig, ReceiveEmpty

    from .processes.neuron import BsoNeuron
    from .processes.synapse import BinarySynapse, FullPrecisionSynapse

    return SimpleNamespace(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Extractor=Extractor, Injector=Injector,
                           ChannelConfig=ChannelConfig, ReceiveEmpty=ReceiveEmpty, BsoNeuron=BsoNeuron,
                           io_models={Injector: PyLoihiInjectorModel, Extractor: PyLoihiExtractorModel},
                           BinarySynapse=BinarySynapse, FullPrecisionSynapse=FullPrecisionSynapse)


def _per_neuron(values: Any, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Float-layer values (scalar, per row/channel, or per neuron) broadcast to the population shape."""
    values = np.asarray(values, dtype=np.float64)
    if kind == "conv" and values.ndim == 1 and len(shape) == 3:
        values = values.reshape(-1, 1, 1)
    return np.broadcast_to(values, shape).copy()


def _lead(copies: int) -> tuple[int, ...]:
    """The copies axis of every port and population: none for a single copy (docs/lava.md)."""
    return (copies,) if copies > 1 else ()


def _recurrent_synapse(lava: SimpleNamespace, layer: Any, steps: int, copies: int) -> Any:
    """The synapse process of a layer's recurrent synapse (docs/fixed-point.md §4.9): dense on its own spikes;
    :func:`_close_loop` connects it."""
    geometry = dict(input_shape=layer.output_shape, kind="dense", input_max=1, sample_steps=steps,
                    copies=copies if copies > 1 else 0, shift_rounding=layer.shift_rounding)
    if layer.recurrent_binary:
        return lava.BinarySynapse(signs=layer.recurrent_weight, weight_mant=layer.recurrent_weight_mant,
                                  weight_exp=layer.recurrent_weight_exp, **geometry)
    return lava.FullPrecisionSynapse(weight=layer.recurrent_weight, weight_exp=layer.recurrent_weight_exp, **geometry)


def _close_loop(neuron: Any, recurrent: Any) -> None:
    """The neuron's s_out into the recurrent synapse, its a_out back into the neuron's a_in, which sums it with
    the feed-forward synapse's (a Lava InPort adds what its OutPorts send); one step of delay, as every
    synapse (§4.9), which is the float graph's loop edge (it carries the previous step's spikes)."""
    neuron.s_out.connect(recurrent.s_in)
    recurrent.a_out.connect(neuron.a_in)


def _fixed_layer_processes(lava: SimpleNamespace, fx_net: FixedPointNetwork, steps: int,
                           copies: int) -> list[tuple[Any, Any]]:
    """(synapse, neuron) per layer of a profile-bso network, all restarting every ``steps`` steps; a recurrent
    layer's own synapse (§4.9) is connected here."""
    pairs = []
    for index, layer in enumerate(fx_net.layers):
        geometry = dict(input_shape=layer.input_shape, kind=layer.kind, pool=layer.pool, stride=layer.stride,
                        padding=layer.padding, input_max=SPEC.input_max if index == 0 else 1, sample_steps=steps,
                        copies=copies if copies > 1 else 0, shift_rounding=layer.shift_rounding)
        if layer.binary:
            synapse = lava.BinarySynapse(signs=layer.weight, weight_mant=layer.weight_mant,
                                         weight_exp=layer.weight_exp, **geometry)
        else:
            synapse = lava.FullPrecisionSynapse(weight=layer.weight, weight_exp=layer.weight_exp, **geometry)
        neuron = lava.BsoNeuron(shape=(*_lead(copies), *layer.output_shape), du=layer.du, dv=layer.dv, vth=layer.vth,
                                bias_mant=layer.bias_mant, bias_exp=layer.bias_exp, bias_delay=layer.bias_delay,
                                reset=layer.reset, spiking=layer.spiking, sample_steps=steps)
        if layer.recurrent:
            _close_loop(neuron, _recurrent_synapse(lava, layer, steps, copies))
        pairs.append((synapse, neuron))
    return pairs


def _float_layer_processes(lava: SimpleNamespace, layers: list[Any], steps: int,
                           copies: int) -> list[tuple[Any, Any]]:
    """(synapse, neuron) per FloatLayer (hardware/quantize.py): float weights, decays 1/tau, bias from step
    k + 1 (the step layer k's first input arrives through the k + 1 synaptic delays, docs/fixed-point.md §5.2),
    a recurrent layer's own synapse connected here."""
    pairs = []
    for index, layer in enumerate(layers):
        shape = tuple(layer.output_shape)
        synapse = lava.FullPrecisionSynapse(weight=np.asarray(layer.weight, dtype=np.float64), weight_exp=0,
                                            input_shape=layer.input_shape, kind=layer.kind, pool=layer.pool,
                                            stride=layer.stride, padding=layer.padding, sample_steps=steps,
                                            copies=copies if copies > 1 else 0)
        du = 1.0 if layer.tau_syn_steps is None else 1.0 / layer.tau_syn_steps
        dv = 0.0 if math.isinf(layer.tau_steps) else 1.0 / layer.tau_steps
        vth = _per_neuron(layer.threshold if layer.spiking else 0.0, layer.kind, shape)
        bias = _per_neuron(layer.bias, layer.kind, shape)
        neuron = lava.BsoNeuron(shape=(*_lead(copies), *shape), du=du, dv=dv, vth=vth, bias_mant=bias,
                                bias_exp=0.0, bias_delay=index + 1,
                                reset=layer.reset, spiking=layer.spiking, sample_steps=steps)
        if layer.recurrent_weight is not None:
            _close_loop(neuron, lava.FullPrecisionSynapse(
                weight=np.asarray(layer.recurrent_weight, dtype=np.float64), weight_exp=0, input_shape=shape,
                kind="dense", sample_steps=steps, copies=copies if copies > 1 else 0))
        pairs.append((synapse, neuron))
    return pairs


class StreamEngine:
    """Our processes, Injector in, one Extractor per layer out; one Lava run per chunk of whole samples.

    With ``copies`` P > 1 every port has a leading axis of P copies: P samples run side by side (a group),
    and groups are streamed like single samples."""

    def __init__(self, network: Any, tag: str, input_shape: tuple[int, ...], steps: int, copies: int) -> None:
        self._lava = lava = _lava()
        self.tag, self.input_shape, self.steps, self.copies = tag, tuple(input_shape), steps, copies
        build = _fixed_layer_processes if tag == "fixed_pt" else _float_layer_processes
        self.pairs = build(lava, network, steps, copies)
        self.shapes = [tuple(neuron.a_in.shape)[len(_lead(copies)):] for _, neuron in self.pairs]
        step_bytes = max(3 * math.prod(shape) for shape in self.shapes) * 8 * copies
        self.chunk_groups = max(1, min(CHANNEL_BYTES // (step_bytes * steps), CHANNEL_STEPS // steps))
        buffer = self.chunk_groups * steps
        # Blocking, not NON_BLOCKING_ZEROS: when a run starts, the channel's receiving thread may not yet have
        # moved the values queued by send() into its queue, and a non-blocking injector would then send zeros
        # and shift the whole stream by a step (seen intermittently). Every run step has its value queued.
        channel = lava.ChannelConfig(receive_empty=lava.ReceiveEmpty.BLOCKING)
        port_shape = (*_lead(copies), *self.input_shape)
        self.injector = lava.Injector(shape=port_shape, buffer_size=buffer, channel_config=channel)
        self.extractors, self.counters = [], []  # per layer: probe_out, and saturation_out under fixed_pt
        previous = self.injector.out_port
        for synapse, neuron in self.pairs:
            previous.connect(synapse.s_in)
            synapse.a_out.connect(neuron.a_in)
            extractor = lava.Extractor(shape=(3, *neuron.a_in.shape), buffer_size=buffer)
            neuron.probe_out.connect(extractor.in_port)
            self.extractors.append(extractor)
            if tag == "fixed_pt":
                counter = lava.Extractor(shape=(3, *neuron.a_in.shape), buffer_size=buffer)
                neuron.saturation_out.connect(counter.in_port)
                self.counters.append(counter)
            previous = neuron.s_out
        self.anchor = self.pairs[-1][1]
        self.started = False
        self.compile_seconds = 0.0
        self.workers = WorkerGuard()

    def start(self) -> None:
        begin = time.perf_counter()
        self.started = True  # from here on worker processes may exist: close() must stop them
        # Lava's Injector and Extractor models carry no tag: name them for the tag-based selection
        run_cfg = self._lava.Loihi2SimCfg(select_tag=self.tag, exception_proc_model_map=self._lava.io_models)
        with self.workers.starting():
            self.anchor.create_runtime(run_cfg=run_cfg)
        self.compile_seconds = time.perf_counter() - begin

    def close(self) -> None:
        """Stop Lava's runtime, its workers killed if it does not stop in time (hardware/lava/workers.py)."""
        if self.started:
            self.started = False
            end_workers(self.workers, self._stop_runtime, lambda: self.anchor.runtime)

    def _stop_runtime(self) -> None:
        """Lava's own stop (in a helper thread, bounded by ``end_workers``)."""
        runtime = self.anchor.runtime
        if runtime is not None and not runtime._is_started:
            # initialized (worker processes forked) but never run: Lava's stop() skips such a runtime, so
            # run one step on one queued zero input (the injector blocks until it has a value)
            port_shape = (*_lead(self.copies), *self.input_shape)
            self.injector.send(np.zeros(port_shape))
            self.anchor.run(condition=self._lava.RunSteps(num_steps=1))
        self.anchor.stop()

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        """inputs (T, batch, *input_shape) -> per layer (T, batch, 3, *shape) float64 (spikes, u, v), then
        under fixed_pt per layer (T, batch, 3, *shape) the running saturation counts (v, u, a)."""
        if not self.started:
            self.start()
        steps, batch = inputs.shape[:2]
        copies = self.copies
        groups = -(-batch // copies)  # the last group is padded with all-zero samples, dropped afterwards
        padded = np.zeros((steps, groups * copies, *self.input_shape))
        padded[:, :batch] = inputs
        # (groups, steps, copies, *input_shape): group after group, each T steps of `copies` samples
        stream = np.moveaxis(padded.reshape(steps, groups, copies, *self.input_shape), 0, 1)
        records = [np.empty((groups, steps, 3, copies, *shape)) for shape in self.shapes + self.shapes[:len(
            self.counters)]]
        port_shape = (*_lead(copies), *self.input_shape)
        with self.workers.watching():  # a worker that dies mid-run raises here instead of hanging the run
            self._stream(stream, records, port_shape, groups)
        # -> (steps, groups * copies, 3, *shape), the padding dropped
        results = []
        for record in records:
            ordered = record.transpose(1, 0, 3, 2, *range(4, record.ndim))  # (steps, groups, copies, 3, *shape)
            results.append(ordered.reshape(steps, groups * copies, 3, *record.shape[4:])[:, :batch])
        return results

    def _stream(self, stream: np.ndarray, records: list[np.ndarray], port_shape: tuple[int, ...],
                groups: int) -> None:
        """Send the stream chunk by chunk, run Lava on each, receive every extractor's values into records."""
        steps, extractors = self.steps, self.extractors + self.counters
        for first in range(0, groups, self.chunk_groups):
            chunk = stream[first:first + self.chunk_groups].reshape(-1, *port_shape)
            for values in chunk:
                self.injector.send(np.ascontiguousarray(values))
            self.anchor.run(condition=self._lava.RunSteps(num_steps=len(chunk)))
            count = len(chunk) // steps
            for record, extractor in zip(records, extractors):
                flat = record[first:first + count].reshape(count * steps, *record.shape[2:])
                for index in range(len(chunk)):
                    flat[index] = extractor.receive().reshape(flat.shape[1:])
