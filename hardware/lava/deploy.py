"""Deploy a fixed-point network (or a NIR graph) to Lava: :func:`deploy` -> :class:`LavaNetwork`.

Profile ``bso`` (and the float graph, ``floating_pt=True``) runs on this project's processes
(``bso_deploy.hardware.lava.processes``): per layer a synapse process (:class:`BinarySynapse` for binary layers,
:class:`FullPrecisionSynapse` otherwise) and a :class:`BsoNeuron`. The network input enters through Lava's
``Injector`` (graded values, layer 0 reads them as 8-bit inputs, docs/fixed-point.md §5.3), and every neuron's
``probe_out`` (spikes, u, v after the step) leaves through an ``Extractor``, under ``fixed_pt`` also its
``saturation_out`` (the counts of §5.6 so far in the sample; their value at a sample's last step becomes that
sample's row of ``SimulationResult.saturation``). All processes are built with
``sample_steps = T``, so a batch of samples runs as ONE Lava run of T * batch steps: every process restarts
(state, delay buffer, bias-delay counter) at each sample boundary, and the network is compiled once, on the
first :meth:`LavaNetwork.run`, and reused by later calls. Inputs are queued before each run and outputs read
after it, so the host never waits on Lava mid-run; runs longer than the channel buffers are split into
chunks of whole samples. ``copies`` P > 1 gives every port and population a leading axis of P network copies
(shared weights) that run P samples side by side, groups of P samples streaming as above (docs/lava.md).

Profile ``loihi`` runs on Lava's own ``Dense`` and ``LIF`` through
:class:`~bso_deploy.hardware.lava.builtin.LavaBuiltinRunner` (compiled once; u, v, delay buffers zeroed
between samples with ``Var.set``). Lava's LIF does not count saturation: its results have ``saturation = ()``,
as have the float network's (``floating_pt``).

:class:`LavaNetwork` is a context manager; :meth:`LavaNetwork.close` stops Lava's runtime (its worker
processes) and runs on exit also after errors and KeyboardInterrupt.
"""

from __future__ import annotations

import math
import os
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..network import FixedPointNetwork, LayerSaturation, SimulationResult
from ..spec import SPEC
from .compat import ensure_lava_importable

__all__ = ["LavaNetwork", "deploy", "measure_lava_deployment"]

CHANNEL_BYTES = 8 << 20  # shared memory per Extractor channel, allocated up front: bounds the steps of one Lava run
_TAGS = ("fixed_pt", "floating_pt")


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


class _StreamEngine:
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
        self.chunk_groups = max(1, CHANNEL_BYTES // (step_bytes * steps))
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

    def start(self) -> None:
        begin = time.perf_counter()
        self.started = True  # from here on worker processes may exist: close() must stop them
        # Lava's Injector and Extractor models carry no tag: name them for the tag-based selection
        run_cfg = self._lava.Loihi2SimCfg(select_tag=self.tag, exception_proc_model_map=self._lava.io_models)
        self.anchor.create_runtime(run_cfg=run_cfg)
        self.compile_seconds = time.perf_counter() - begin

    def close(self) -> None:
        if self.started:
            self.started = False
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
        extractors = self.extractors + self.counters
        records = [np.empty((groups, steps, 3, copies, *shape)) for shape in self.shapes + self.shapes[:len(
            self.counters)]]
        port_shape = (*_lead(copies), *self.input_shape)
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
        # -> (steps, groups * copies, 3, *shape), the padding dropped
        results = []
        for record in records:
            ordered = record.transpose(1, 0, 3, 2, *range(4, record.ndim))  # (steps, groups, copies, 3, *shape)
            results.append(ordered.reshape(steps, groups * copies, 3, *record.shape[4:])[:, :batch])
        return results


class _BuiltinEngine:
    """Profile loihi: Lava's Dense + LIF through LavaBuiltinRunner (u and v read when recording)."""

    def __init__(self, fx_net: FixedPointNetwork, steps: int, record: bool) -> None:
        from .builtin import LavaBuiltinRunner

        self.runner = LavaBuiltinRunner(fx_net, steps, record=record)

    @property
    def compile_seconds(self) -> float:
        return self.runner.compile_seconds

    def close(self) -> None:
        self.runner.close()


class LavaNetwork:
    """A network deployed to Lava (see the module docstring); build with :func:`deploy`.

    ``run(inputs)`` takes integers (T, batch, *input_shape) in [0, 255] (docs/fixed-point.md §5.3), or floats
    for a ``floating_pt`` network, and returns a :class:`SimulationResult`: spikes per layer (T, batch,
    *shape), the output (§5.4: last layer's spikes, or its v), and with ``record=True`` u and v per layer after
    reset (§5.5). Integer results are int64 (spikes int8); float results float64. Every sample starts from the
    initial state (§3.8), as if it ran alone. The first call compiles; the same T (``sample_steps``) must be
    used by every call. ``copies`` > 1 (profile bso and floating_pt): that many copies of the network run
    side by side, each streaming its share of the samples (docs/lava.md).
    """

    def __init__(self, network: Any, profile: str, tag: str, input_shape: tuple[int, ...],
                 sample_steps: int | None = None, copies: int = 1) -> None:
        if tag not in _TAGS:
            raise ValueError(f"tag must be one of {_TAGS}, got {tag!r}")
        self.network, self.profile, self.tag = network, profile, tag
        self.input_shape = tuple(input_shape)
        self.sample_steps = None if sample_steps is None else _positive(sample_steps, "sample_steps")
        self.copies = _positive(copies, "copies")
        if self.copies > 1 and profile == "loihi":
            raise ValueError("copies > 1 needs bso-deploy's processes; profile 'loihi' runs on Lava's Dense + LIF, "
                             "one copy (deploy FixedPointNetwork('bso', ...) of the same layers instead)")
        self._engine: Any = None
        self._record_builtin = False

    @property
    def num_layers(self) -> int:
        return len(self.network.layers) if isinstance(self.network, FixedPointNetwork) else len(self.network)

    @property
    def compile_seconds(self) -> float:
        """Seconds Lava took to compile and start the network (0 before the first run)."""
        return 0.0 if self._engine is None else self._engine.compile_seconds

    def close(self) -> None:
        """Stop Lava's runtime; idempotent. Also called by ``with`` on exit, errors and Ctrl-C included."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def __enter__(self) -> LavaNetwork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _checked(self, inputs: Any) -> np.ndarray:
        x = np.asarray(inputs)
        shape = self.input_shape
        if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"inputs must have shape (T, batch, *{shape}) with T, batch >= 1, got {x.shape}")
        if self.tag == "floating_pt":
            if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
                raise ValueError("inputs of a floating_pt network must be finite real numbers")
            return x.astype(np.float64)
        if x.dtype.kind not in "iub":
            raise ValueError(f"inputs must be integers in [0, {SPEC.input_max}] (docs/fixed-point.md §5.3), got "
                             f"dtype {x.dtype}; quantize float inputs first (quantize_inputs)")
        if x.min() < 0 or x.max() > SPEC.input_max:
            raise ValueError(f"inputs must lie in [0, {SPEC.input_max}] (docs/fixed-point.md §5.3), got values in "
                             f"[{x.min()}, {x.max()}]")
        return x.astype(np.int64)

    def _engine_for(self, steps: int, record: bool) -> Any:
        if self.sample_steps is None:
            self.sample_steps = steps
        if steps != self.sample_steps:
            raise ValueError(f"this network was deployed for samples of {self.sample_steps} steps, got inputs of "
                             f"{steps}; deploy another network (sample_steps={steps}) or pad the inputs")
        if self.profile == "loihi" and self._engine is not None and record and not self._record_builtin:
            self.close()  # the built-in runner reads u and v through processes added at build time
        if self._engine is None:
            if self.profile == "loihi":
                self._engine, self._record_builtin = _BuiltinEngine(self.network, steps, record), record
            else:
                self._engine = _StreamEngine(self.network, self.tag, self.input_shape, steps, self.copies)
        return self._engine

    def run(self, inputs: Any, record: bool = False) -> SimulationResult:
        x = self._checked(inputs)
        engine = self._engine_for(int(x.shape[0]), bool(record))
        try:
            if isinstance(engine, _BuiltinEngine):
                return engine.runner.run(x, record=record)
            return self._result(engine.run(x), record)
        except BaseException:
            self.close()  # a run cut short leaves Lava mid-stream: stop it rather than reuse it
            raise

    def _result(self, records: list[np.ndarray], record: bool) -> SimulationResult:
        fixed = self.tag == "fixed_pt"
        saturation = ()
        if fixed:  # the counts after each sample's last step are that sample's (§5.6)
            records, counters = records[:self.num_layers], records[self.num_layers:]
            saturation = tuple(LayerSaturation(*(counter[-1, :, row].astype(np.int64) for row in range(3)))
                               for counter in counters)
        spikes = tuple(r[:, :, 0].astype(np.int8) if fixed else r[:, :, 0].copy() for r in records)
        states = [(r[:, :, 1], r[:, :, 2]) for r in records]
        if fixed:
            states = [(u.astype(np.int64), v.astype(np.int64)) for u, v in states]
        last_spiking = self._last_spiking()
        output = spikes[-1].astype(np.int64 if fixed else np.float64) if last_spiking else states[-1][1].copy()
        if not record:
            return SimulationResult(spikes=spikes, output=output, u=(), v=(), saturation=saturation)
        return SimulationResult(spikes=spikes, output=output, u=tuple(u for u, _ in states),
                                v=tuple(v for _, v in states), saturation=saturation)

    def _last_spiking(self) -> bool:
        last = self.network.layers[-1] if isinstance(self.network, FixedPointNetwork) else self.network[-1]
        return bool(last.spiking)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def deploy(network: FixedPointNetwork | Any, profile: str | None = None, *, sample_steps: int | None = None,
           copies: int = 1, floating_pt: bool = False, dt: float | None = None, input_scale: float | None = None,
           weight_bits: int | None = None, time_steps: int | None = None) -> LavaNetwork:
    """A :class:`LavaNetwork` for ``network``: a :class:`FixedPointNetwork`, or a NIR graph / file path that is
    compiled with ``compile_nir(graph, profile, input_scale, weight_bits, dt, time_steps)`` first.

    profile: "bso" (our processes) or "loihi" (Lava's Dense + LIF); for a FixedPointNetwork it defaults to,
    and must equal, the network's own; for a graph it defaults to "bso". floating_pt: run the graph's float
    network instead (NIR graph only; ``bso_deploy.hardware.compiler.float_layers``, float inputs).
    sample_steps: T of every sample (default: the T of the first ``run``). copies: run that many copies of the
    network side by side (profile bso, floating_pt; default 1: one network streams every sample). Nothing
    starts until ``run``."""
    if isinstance(network, FixedPointNetwork):
        if floating_pt:
            raise ValueError("floating_pt needs the NIR graph (the float weights); pass the graph or its path")
        if profile is not None and profile != network.profile:
            raise ValueError(f"the network was compiled for profile {network.profile!r}, not {profile!r}; "
                             "recompile it or drop profile")
        return LavaNetwork(network, network.profile, "fixed_pt", network.input_shape, sample_steps, copies)
    from ..compiler import compile_nir, float_layers, graph_input_shape, read_graph

    if not isinstance(network, (str, os.PathLike)) and not hasattr(network, "nodes"):
        raise ValueError(f"deploy takes a FixedPointNetwork, a nir.NIRGraph or a .nir path, not "
                         f"{type(network).__name__}")
    graph = read_graph(network)
    profile = "bso" if profile is None else profile
    if floating_pt:
        return LavaNetwork(float_layers(graph, profile, dt), profile, "floating_pt", graph_input_shape(graph),
                           sample_steps, copies)
    fx_net = compile_nir(graph, profile=profile, input_scale=input_scale, weight_bits=weight_bits, dt=dt,
                         time_steps=time_steps)
    return LavaNetwork(fx_net, fx_net.profile, "fixed_pt", fx_net.input_shape, sample_steps, copies)


def measure_lava_deployment(fx_net: FixedPointNetwork, inputs: np.ndarray, copies: int = 1) -> dict[str, Any]:
    """Deploy ``fx_net`` (with ``copies``), run ``inputs`` (T, batch, ...) integers twice (the first run
    compiles) and time it.

    Returns backend, profile, mode ("streamed": our processes, one Lava run per chunk of samples;
    "builtin-per-sample" for profile loihi: Lava's Dense + LIF, one Lava run per sample), copies, batch,
    time_steps, lava_steps (Lava time steps of one run), compile_seconds, first_run_seconds, run_seconds (the
    second run), seconds_per_step (per Lava time step), seconds_per_sample, samples_per_second."""
    inputs = np.asarray(inputs)
    steps, batch = int(inputs.shape[0]), int(inputs.shape[1])
    with deploy(fx_net, copies=copies) as network:
        begin = time.perf_counter()
        network.run(inputs)
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        network.run(inputs)
        seconds = time.perf_counter() - begin
        compile_seconds = network.compile_seconds
    lava_steps = steps * -(-batch // copies)
    return {"backend": "lava", "profile": fx_net.profile,
            "mode": "streamed" if fx_net.profile != "loihi" else "builtin-per-sample", "copies": copies,
            "batch": batch, "time_steps": steps, "lava_steps": lava_steps, "compile_seconds": compile_seconds,
            "first_run_seconds": first, "run_seconds": seconds, "seconds_per_step": seconds / lava_steps,
            "seconds_per_sample": seconds / batch, "samples_per_second": batch / seconds}
