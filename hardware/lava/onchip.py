"""On-chip learning on Lava: :class:`LavaLearner`, the ``"lava"`` :class:`~bso_deploy.hardware.learner.Learner`.

The whole network runs in Lava's runtime (``Loihi2SimCfg(select_tag="fixed_pt")``), one process per stage:

    Injector (inputs) -> [BinarySynapse | FullPrecisionSynapse -> BsoNeuron] per layer before the learning one
      -> LearningSynapse -> LearningNeuron -> [synapse -> BsoNeuron] per layer after it
    LearningNeuron.v_out -> LearningSynapse.post_in           (v before reset: the postsynaptic factor)
    LearningNeuron.current_out -> ReadoutError <- Injector (labels)      (output layer: on-chip error)
    output BsoNeuron.probe_out -> FeedbackError <- Injector (labels)     (hidden layer, onchip-learning.md §18)
    ReadoutError.error_out (FeedbackError's, or an Injector of host errors) -> LearningSynapse.error_in

Frozen layers are bso_deploy.hardware.lava.processes' BinarySynapse / FullPrecisionSynapse / BsoNeuron; the
learning layer is bso_deploy.hardware.lava.learning's processes, whose synapse updates its 1-bit weights in
Lava's learning phase (docs/onchip-learning.md §11). Every process restarts every S = T + latency steps
(``sample_steps``), so N samples run as ONE Lava run of N S steps: the host queues inputs and labels (or
errors) before the run and reads the learning reports (one per learning step, through the synapse's
external pipe) and the neuron probes (Extractors) after it; runs longer than the channel buffers are split
into chunks of whole samples. The network is compiled once, on the first :meth:`LavaLearner.run`; learning
state (signs, momenta, second moments, counter) stays in Lava between runs. Lava is always stopped:
:meth:`LavaLearner.close`, the context manager, and a finalizer for learners that are simply dropped.
"""

from __future__ import annotations

import math
import weakref
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..learner import (
    LearningRecord,
    LearningState,
    check_learning_inputs,
    check_learning_layer,
    learning_window,
    with_layer_bias,
)
from ..learning import init_learning_state, refuse_recurrent, with_layer_weight  # containers, no arithmetic
from ..learning_rule import LearningRule
from ..network import FixedPointNetwork
from ..spec import SPEC
from .compat import ensure_lava_importable
from .learning_arithmetic import learned_bias_mant
from .workers import WorkerGuard, end_workers

__all__ = ["LavaLearner"]

CHANNEL_BYTES = 16 << 20  # per channel (inputs, labels, reports, probes): bounds the samples of one Lava run
_RECORD_STATE = ("trace", "momentum", "weight", "second_moment", "error", "surrogate", "bias")


def _lava() -> SimpleNamespace:
    ensure_lava_importable()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.injector import Injector, PyLoihiInjectorModel
    from lava.proc.io.utils import ChannelConfig, ReceiveEmpty

    from .learning.error import FeedbackError, ReadoutError
    from .learning.neuron import LearningNeuron
    from .learning.synapse import LearningSynapse, report_layout
    from .processes.neuron import BsoNeuron
    from .processes.synapse import BinarySynapse, FullPrecisionSynapse

    return SimpleNamespace(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Extractor=Extractor, Injector=Injector,
                           ChannelConfig=ChannelConfig, ReceiveEmpty=ReceiveEmpty, BsoNeuron=BsoNeuron,
                           io_models={Injector: PyLoihiInjectorModel, Extractor: PyLoihiExtractorModel},
                           BinarySynapse=BinarySynapse, FullPrecisionSynapse=FullPrecisionSynapse,
                           LearningSynapse=LearningSynapse, LearningNeuron=LearningNeuron, ReadoutError=ReadoutError,
                           FeedbackError=FeedbackError, report_layout=report_layout)


def _unpack(bits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(np.asarray(bits, dtype=np.uint8), count=shape[0] * shape[1]).reshape(shape)


class _Engine:
    """One compiled Lava network for a learner (module docstring); ``record`` fixes the report contents."""

    def __init__(self, fx_net: FixedPointNetwork, rule: LearningRule, index: int, state: LearningState,
                 labels: bool, record: bool) -> None:
        self._lava = lava = _lava()
        self.fx_net, self.rule, self.index, self.record, self.labels = fx_net, rule, index, record, labels
        layers = fx_net.layers
        self.steps = rule.time_steps + len(layers)  # T input steps + the latency's zero steps (§5.2)
        self.window = learning_window(index, rule)
        learning = layers[index]
        self.shape = tuple(learning.weight.shape)
        self.layout = lava.report_layout(*self.shape, rule.time_steps, record)
        report_size = self.layout["bias" if record else "flips"].stop
        probe_sizes = [3 * layers[k].num_neurons for k in range(index, len(layers))]
        step_bytes = 8 * max(math.prod(fx_net.input_shape), self.shape[0], *probe_sizes)
        self.chunk_samples = max(1, min(CHANNEL_BYTES // (8 * report_size * rule.time_steps),
                                        CHANNEL_BYTES // (step_bytes * self.steps)))
        buffer = self.chunk_samples * self.steps
        # Blocking, not NON_BLOCKING_ZEROS: a channel's receiving thread may not have moved the queued values
        # into its queue yet when the run starts, and an injector that sees an empty queue would send zeros.
        channel = lava.ChannelConfig(receive_empty=lava.ReceiveEmpty.BLOCKING)
        self.injector = lava.Injector(shape=fx_net.input_shape, buffer_size=buffer, channel_config=channel)
        previous = self.injector.out_port
        self.neurons: list[Any] = []
        for k, layer in enumerate(layers):
            if k == index:
                synapse = self.synapse = lava.LearningSynapse(
                    signs=state.weight, weight_mant=layer.weight_mant, weight_exp=layer.weight_exp,
                    input_max=SPEC.input_max if k == 0 else 1, rule=rule, window_start=self.window.start,
                    vth=np.asarray(layer.vth).reshape(-1) if layer.spiking else None, momentum=state.momentum,
                    second_moment=state.second_moment, counter=int(state.counter), sample_steps=self.steps,
                    record=record, report_buffer=self.chunk_samples * rule.time_steps,
                    shift_rounding=layer.shift_rounding, bias=state.bias)
                neuron = lava.LearningNeuron(n=layer.num_neurons, du=layer.du, dv=layer.dv,
                                             vth=np.asarray(layer.vth).reshape(-1),
                                             bias_mant=np.asarray(layer.bias_mant).reshape(-1),
                                             bias_exp=np.asarray(layer.bias_exp).reshape(-1),
                                             bias_delay=layer.bias_delay, reset=layer.reset, spiking=layer.spiking,
                                             sample_steps=self.steps)
                neuron.v_out.connect(synapse.post_in)
                synapse.bias_out.connect(neuron.bias_in)
                self.learning_neuron = neuron
            else:
                synapse, neuron = self._frozen_layer(k, layer)
            previous.connect(synapse.s_in)
            synapse.a_out.connect(neuron.a_in)
            previous = neuron.s_out
            self.neurons.append(neuron)
        if labels and rule.feedback_alignment:  # the frozen output's error through B (docs/onchip-learning.md §18)
            self.label_injector = lava.Injector(shape=(1,), buffer_size=buffer, channel_config=channel)
            out = layers[-1]
            error = lava.FeedbackError(n_hidden=learning.num_neurons, n_out=out.num_neurons, rule=rule,
                                       window_start=self.window.start, bias_mant=np.asarray(out.bias_mant).reshape(-1),
                                       bias_exp=np.asarray(out.bias_exp).reshape(-1), bias_delay=out.bias_delay,
                                       sample_steps=self.steps)
            self.label_injector.out_port.connect(error.label_in)
            self.neurons[-1].probe_out.connect(error.probe_in)
            error.error_out.connect(self.synapse.error_in)
        elif labels:
            self.label_injector = lava.Injector(shape=(1,), buffer_size=buffer, channel_config=channel)
            error = lava.ReadoutError(n=learning.num_neurons, rule=rule, window_start=self.window.start,
                                      sample_steps=self.steps)
            self.label_injector.out_port.connect(error.label_in)
            self.learning_neuron.current_out.connect(error.current_in)
            error.error_out.connect(self.synapse.error_in)
        else:
            self.error_injector = lava.Injector(shape=(learning.num_neurons,), buffer_size=buffer,
                                                channel_config=channel)
            self.error_injector.out_port.connect(self.synapse.error_in)
        self.extractors = []
        for k in range(index, len(layers)):
            extractor = lava.Extractor(shape=(3, layers[k].num_neurons), buffer_size=buffer)
            self.neurons[k].probe_out.connect(extractor.in_port)
            self.extractors.append(extractor)
        self.started = False
        self.workers = WorkerGuard()

    def _frozen_layer(self, k: int, layer: Any) -> tuple[Any, Any]:
        lava = self._lava
        if layer.kind != "dense" or len(layer.output_shape) != 1:
            raise ValueError(f"layer {layer.name!r}: the Lava learner runs dense networks only, got {layer.kind}")
        geometry = dict(input_shape=layer.input_shape, kind=layer.kind, pool=layer.pool, stride=layer.stride,
                        padding=layer.padding, input_max=SPEC.input_max if k == 0 else 1, sample_steps=self.steps,
                        shift_rounding=layer.shift_rounding)
        if layer.binary:
            synapse = lava.BinarySynapse(signs=layer.weight, weight_mant=layer.weight_mant,
                                         weight_exp=layer.weight_exp, **geometry)
        else:
            synapse = lava.FullPrecisionSynapse(weight=layer.weight, weight_exp=layer.weight_exp, **geometry)
        neuron = lava.BsoNeuron(shape=layer.output_shape, du=layer.du, dv=layer.dv, vth=layer.vth,
                                bias_mant=layer.bias_mant, bias_exp=layer.bias_exp, bias_delay=layer.bias_delay,
                                reset=layer.reset, spiking=layer.spiking, sample_steps=self.steps)
        return synapse, neuron

    def close(self) -> None:
        """Stop Lava's runtime, its workers killed if it does not stop in time (hardware/lava/workers.py)."""
        if self.started:
            self.started = False
            end_workers(self.workers, self._stop_runtime, lambda: self.synapse.runtime)

    def _stop_runtime(self) -> None:
        runtime = self.synapse.runtime
        if runtime is not None and not runtime._is_started:
            # created but never run: Lava's stop() skips such a runtime; one step with one queued value per
            # injector (they block on an empty queue) makes it stoppable
            for injector in self._injectors():
                injector.send(np.zeros(injector.out_port.shape))
            self.synapse.run(condition=self._lava.RunSteps(num_steps=1))
        self.synapse.stop()

    def _injectors(self) -> list[Any]:
        return [self.injector, self.label_injector if self.labels else self.error_injector]

    def read_state(self) -> LearningState:
        """The learning state from the synapse's Vars (host phase, between runs)."""
        synapse = self.synapse
        weight = 2 * _unpack(np.asarray(synapse.weight_bits.get()).astype(np.uint8), self.shape).astype(np.int8) - 1
        return LearningState(weight=weight.astype(np.int8),
                             momentum=np.asarray(synapse.momentum.get()).astype(np.int64).reshape(self.shape),
                             trace=np.asarray(synapse.trace.get()).astype(np.int64),
                             second_moment=np.asarray(synapse.second_moment.get()).astype(np.int64),
                             counter=int(np.asarray(synapse.counter.get()).reshape(-1)[0]),
                             bias=np.asarray(synapse.bias.get()).astype(np.int64).reshape(-1))

    def run_chunk(self, inputs: np.ndarray, labels: np.ndarray | None,
                  errors: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """inputs (S, n, *input_shape) padded; labels (n,) or errors (T, n, n_out). Returns the reports
        (n, T, report_size) int64 and the probes per layer k >= index, (n, S, 3, n_k) int64."""
        lava, steps, samples = self._lava, self.steps, inputs.shape[1]
        if not self.started:
            self.started = True  # from here on worker processes may exist: close() must stop them
            run_cfg = lava.Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=lava.io_models)
            with self.workers.starting():
                self.synapse.create_runtime(run_cfg=run_cfg)  # compiles; the injectors need it before a send
        for n in range(samples):
            for t in range(steps):
                self.injector.send(inputs[t, n].astype(np.float64))
        if labels is not None:
            for label in labels:
                for _ in range(steps):
                    self.label_injector.send(np.array([float(label)]))
        else:
            zeros = np.zeros(self.shape[0])
            for n in range(samples):
                for t in range(steps):
                    inside = t - self.window.start
                    value = errors[inside, n] if 0 <= inside < self.rule.time_steps else zeros
                    self.error_injector.send(np.asarray(value, dtype=np.float64))
        self.synapse.run(condition=lava.RunSteps(num_steps=samples * steps))
        pipe = self.synapse.report_out.external_pipe_csp_recv_port
        reports = np.stack([np.asarray(pipe.recv(), dtype=np.int64) for _ in range(samples * self.rule.time_steps)])
        probes = [np.stack([np.asarray(extractor.receive()) for _ in range(samples * steps)])
                  .astype(np.int64).reshape(samples, steps, 3, -1) for extractor in self.extractors]
        return reports.reshape(samples, self.rule.time_steps, -1), probes


def _stop(engines: list[_Engine]) -> None:
    for engine in engines:
        engine.close()
    engines.clear()


class LavaLearner:
    """The ``"lava"`` learner (module docstring): ``LavaLearner(fx_net, rule, layer=-1, state=None)``;
    ``run(inputs, labels=None, errors=None, record=False) -> LearningRecord`` as the
    :class:`~bso_deploy.hardware.learner.Learner` protocol says; ``state``; ``network()``; ``close()``.

    The compiled network depends on whether the error comes from labels or the host and on ``record``
    (the report contents); a run that changes either reads the state back from Lava, stops that network and
    compiles another one from the state."""

    name = "lava"

    def __init__(self, fx_net: FixedPointNetwork, rule: LearningRule, layer: int = -1,
                 state: LearningState | None = None) -> None:
        refuse_recurrent(fx_net)
        self.fx_net, self.rule = fx_net, rule
        self.layer = check_learning_layer(fx_net, layer, rule)
        self._state = init_learning_state(fx_net.layers[self.layer], rule) if state is None else state
        if self._state.bias is None:
            self._state = self._state._replace(bias=np.zeros(fx_net.layers[self.layer].num_neurons, np.int64))
        self._state_fresh = True  # False when Lava holds a newer momentum / trace / second moment
        self._engines: list[_Engine] = []
        self._finalizer = weakref.finalize(self, _stop, self._engines)
        self._failed = False  # a run failed: Lava was stopped mid-stream and the learning state is lost

    def _check_usable(self) -> None:
        if self._failed:
            raise ValueError("a run of this LavaLearner failed and Lava was stopped mid-stream, so its learning state "
                             "is lost; build a new learner (pass state= to start from a known state)")

    @property
    def state(self) -> LearningState:
        self._check_usable()
        if not self._state_fresh and self._engines:
            self._state = self._engines[0].read_state()
            self._state_fresh = True
        return self._state

    def network(self) -> FixedPointNetwork:
        """The network with the learned signs in the learning layer (kept on the host from the reports) and,
        with a learned bias (docs/onchip-learning.md §15), its bias_mant registers (read from Lava)."""
        learned = with_layer_weight(self.fx_net, self.layer, self._state.weight)
        if not self.rule.learns_bias:
            return learned
        base = self.fx_net.layers[self.layer].bias_mant
        return with_layer_bias(learned, self.layer, learned_bias_mant(base, self.state.bias, self.rule))

    def close(self) -> None:
        """Stop Lava (idempotent); the state is read back first, so ``state`` stays valid."""
        if self._engines and not self._failed:
            self._state = self.state
        self._finalizer()

    def __enter__(self) -> LavaLearner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _engine(self, labels: bool, record: bool) -> _Engine:
        if self._engines and (self._engines[0].labels, self._engines[0].record) != (labels, record):
            self.close()
        if not self._engines:
            if not self._finalizer.alive:
                self._finalizer = weakref.finalize(self, _stop, self._engines)
            self._engines.append(_Engine(self.fx_net, self.rule, self.layer, self.state, labels, record))
        return self._engines[0]

    def run(self, inputs: np.ndarray, labels: np.ndarray | None = None, errors: np.ndarray | None = None,
            record: bool = False) -> LearningRecord:
        self._check_usable()
        inputs, labels, errors = check_learning_inputs(self.fx_net, self.rule, self.layer, inputs, labels, errors)
        engine = self._engine(labels is not None, bool(record))
        before = self.state if record else None  # what the steps before the first window show (_step_buffers)
        count = len(self.fx_net.layers)
        padded = np.concatenate([inputs, np.zeros((count, *inputs.shape[1:]), np.int64)])  # latency steps (§5.2)
        reports, probes = [], [[] for _ in engine.extractors]
        try:
            for first in range(0, inputs.shape[1], engine.chunk_samples):
                chunk = slice(first, first + engine.chunk_samples)
                with engine.workers.watching():  # a worker that dies mid-run raises instead of hanging the run
                    chunk_reports, chunk_probes = engine.run_chunk(
                        padded[:, chunk], None if labels is None else labels[chunk],
                        None if errors is None else errors[:, chunk])
                reports.append(chunk_reports)
                for store, probe in zip(probes, chunk_probes):
                    store.append(probe)
        except BaseException:
            # a run cut short leaves Lava mid-stream: stop it (without reading its Vars) rather than reuse it
            self._failed = True
            self._finalizer()
            raise
        self._state_fresh = False
        return self._record(engine, np.concatenate(reports), [np.concatenate(p) for p in probes], before)

    def _record(self, engine: _Engine, reports: np.ndarray, probes: list[np.ndarray],
                before: LearningState | None) -> LearningRecord:
        """The LearningRecord of a run from its reports (N, T, size) and probes (N, S, 3, n_k)."""
        rule, layout, shape, window = self.rule, engine.layout, engine.shape, engine.window
        samples = reports.shape[0]
        packed = reports[..., layout["flips"]].reshape(samples * rule.time_steps, -1).astype(np.uint8)
        flip_masks = np.stack([_unpack(row, shape) for row in packed]).astype(bool)
        flip_masks = flip_masks.reshape(samples, rule.time_steps, *shape)
        weight = np.asarray(self._state.weight, dtype=np.int8).copy()
        events = []
        for n, t in zip(*np.nonzero(flip_masks.any(axis=(2, 3)))):  # row-major: in stream order
            rows, cols = np.nonzero(flip_masks[n, t])
            weight[rows, cols] = -weight[rows, cols]
            events.append(np.stack([np.full(rows.size, n), np.full(rows.size, window.start + t), rows, cols], axis=1))
        self._state = self._state._replace(weight=weight, counter=int(reports[-1, -1, 0]))
        last = self.fx_net.layers[-1]
        output = probes[-1]
        readout = output[:, -1, 2] if not last.spiking else output[:, :, 0].sum(axis=1)  # (N, n_out)
        population = rule.population  # onchip-learning.md §14; 1 for a hidden layer without feedback alignment
        predictions = np.argmax(readout.reshape(samples, -1, population).sum(axis=2), axis=-1).astype(np.int64)
        buffers: dict[str, np.ndarray] = {}
        if before is not None:
            buffers = _step_buffers(engine, reports, before)
            for offset, k in enumerate(range(self.layer, len(self.fx_net.layers))):
                buffers[f"spikes/{k}"] = probes[offset][:, :, 0].astype(np.int8)
                buffers[f"v/{k}"] = probes[offset][:, :, 2]
        flip_events = np.concatenate(events).astype(np.int64) if events else np.zeros((0, 4), np.int64)
        return LearningRecord(predictions=predictions, flips=flip_masks.sum(axis=(1, 2, 3)).astype(np.int64),
                              flip_events=flip_events, state=self.state, steps=buffers)


def _step_buffers(engine: _Engine, reports: np.ndarray, before: LearningState) -> dict[str, np.ndarray]:
    """Per-step learning state (N, S, ...) from the per-learning-step reports (N, T, size). Outside the window
    the rule changes nothing (docs/onchip-learning.md §5, §11): before it a sample shows the state its
    predecessor ended with (``before`` for the first) with trace, error and surrogate restarted at zero,
    after it the state of its last learning step."""
    layout, shape, window = engine.layout, engine.shape, engine.window
    samples, steps = reports.shape[0], engine.steps
    rows = reports.reshape(samples * len(window), -1)
    decoded = {"weight": np.stack([2 * _unpack(row[layout["weight"]].astype(np.uint8), shape).astype(np.int8) - 1
                                   for row in rows]),
               "momentum": rows[:, layout["momentum"]].reshape(-1, *shape)}
    for name in ("trace", "second_moment", "error", "surrogate", "bias"):
        decoded[name] = rows[:, layout[name]]
    initial = {"weight": np.asarray(before.weight, dtype=np.int8), "momentum": np.asarray(before.momentum),
               "second_moment": np.asarray(before.second_moment), "bias": np.asarray(before.bias)}
    buffers = {}
    for name in _RECORD_STATE:
        per_step = decoded[name].reshape(samples, len(window), *decoded[name].shape[1:])
        out = np.zeros((samples, steps, *per_step.shape[2:]), dtype=per_step.dtype)
        out[:, window.start:window.stop] = per_step
        out[:, window.stop:] = per_step[:, -1:]
        if name in initial:  # trace, error and surrogate stay zero before the window; bias persists
            out[0, :window.start] = initial[name]
            out[1:, :window.start] = per_step[:-1, -1:]
        buffers[name] = out
    return buffers

