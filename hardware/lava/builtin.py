"""Run a profile ``loihi`` :class:`FixedPointNetwork` on Lava's built-in fixed_pt ``Dense`` + ``LIF`` processes.

The network is wired as in tests/hardware/test_lava_builtin_parity.py: a source ``RingBuffer`` feeds layer 0
through a graded ``Dense`` (num_message_bits = ``SPEC.input_bits``), later layers receive binary spikes,
binary layers are given to Lava in their documented form (docs/fixed-point.md §4.6: weights
2 * weight_mant * sign, exponent weight_exp - 1) and a non-spiking readout becomes a LIF with
vth = ``SPEC.vth_max`` (§3.7) whose v is read every step by a ``Read`` process. A recurrent layer (§4.9) gets a
second ``Dense`` (binary spikes) from its LIF's ``s_out`` back to its ``a_in``, where Lava adds it to the
feed-forward ``Dense``'s input; it delivers one step later like every Dense.

:class:`LavaBuiltinRunner` compiles the network once and streams samples through it. Between samples it
zeroes every LIF's u and v and every Dense's ``a_buff`` (the one-step synaptic delay, §4.8) with
``Var.set``, and loads the next sample into the source ring buffer: each sample then starts from the same
state as a fresh ``simulate`` call. Every sample lasts exactly ``steps`` steps, so the ring buffers (source,
spike sinks, v reader, all indexed by time step modulo ``steps``) stay aligned with the sample. The runtime
is always stopped (``__exit__``, ``close``). With ``record=True`` a ``Read`` process per LIF and state reads u
and v after every step (after reset, docs/fixed-point.md §5.5). :func:`run_lava_per_sample` is the naive
alternative: a fresh build, compile and run for every sample. ``bso_deploy.hardware.lava.deploy`` uses this
runner for profile ``loihi``. Lava's LIF keeps no saturation counts (docs/fixed-point.md §5.6), so its results
have ``saturation = ()``: run the simulator for them (the profile admits only ``floor`` shifts, §4.7).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..network import FixedPointNetwork, SimulationResult
from ..spec import SPEC
from .compat import ensure_lava_importable
from .workers import WorkerGuard, end_workers

__all__ = ["LavaBuiltinRunner", "run_lava_per_sample"]


def _lava() -> SimpleNamespace:
    ensure_lava_importable()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import Read
    from lava.proc.io.sink import RingBuffer as SinkRingBuffer
    from lava.proc.io.source import RingBuffer as SourceRingBuffer
    from lava.proc.lif.process import LIF

    return SimpleNamespace(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Dense=Dense, Read=Read, LIF=LIF,
                           SinkRingBuffer=SinkRingBuffer, SourceRingBuffer=SourceRingBuffer)


def _lava_weights(weight: np.ndarray, binary: bool, weight_mant: int) -> np.ndarray:
    """What Lava's Dense gets as weights: 8-bit weights as they are, binary signs as 2 * weight_mant * sign
    (with exponent weight_exp - 1, docs/fixed-point.md §4.6)."""
    return 2 * weight_mant * np.asarray(weight) if binary else np.asarray(weight)


def _check_network(fx_net: FixedPointNetwork) -> None:
    if fx_net.profile != "loihi":
        raise ValueError(f"Lava's built-in processes run profile 'loihi' networks only, got {fx_net.profile!r}; "
                         "compile with profile='loihi'")
    for layer in fx_net.layers:
        if layer.kind != "dense":
            raise ValueError(f"layer {layer.name!r}: kind {layer.kind!r} is not supported by the Lava built-in "
                             "runner (dense layers only)")
    if len(fx_net.input_shape) != 1:
        raise ValueError(f"the Lava built-in runner needs a flat input, got input_shape {fx_net.input_shape}")


class LavaBuiltinRunner:
    """One compiled Lava network that streams samples of exactly ``steps`` steps each.

    Use as a context manager (``with LavaBuiltinRunner(fx_net, steps) as runner: runner.run(inputs)``) or
    call :meth:`close`; the Lava runtime (worker processes) is stopped on exit, also after an error.
    ``record``: also read u and v of every layer (slower: Lava's Var reads go value by value).
    ``compile_seconds``: time Lava took to compile and start the network, on the first sample.
    """

    def __init__(self, fx_net: FixedPointNetwork, steps: int, record: bool = False) -> None:
        _check_network(fx_net)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.fx_net = fx_net
        self.steps = int(steps)
        self.record = bool(record)
        self.compile_seconds = 0.0
        self._lava = _lava()
        self._build()
        self._started = False
        self._workers = WorkerGuard()
        self._fresh = True  # the state is the initial one: no reset needed before the next sample

    def _build(self) -> None:
        lava, steps = self._lava, self.steps
        self._source = lava.SourceRingBuffer(data=np.zeros((self.fx_net.input_shape[0], steps), dtype=np.int32))
        previous: Any = self._source
        self._dense, self._lif, self._sinks, self._recurrent = [], [], [], []
        for index, layer in enumerate(self.fx_net.layers):
            weights = _lava_weights(layer.weight, layer.binary, layer.weight_mant)
            weight_exp = layer.weight_exp - layer.binary  # a binary layer's Lava form (§4.6)
            dense = lava.Dense(weights=np.asarray(weights, dtype=np.int32), weight_exp=int(weight_exp),
                               num_message_bits=SPEC.input_bits if index == 0 else 0)
            vth = int(layer.vth.flat[0]) if layer.spiking else SPEC.vth_max  # §3.7: readout as vth = max
            lif = lava.LIF(shape=layer.output_shape, du=layer.du, dv=layer.dv, vth=vth,
                           bias_mant=layer.bias_mant.copy(), bias_exp=layer.bias_exp.copy())
            sink = lava.SinkRingBuffer(shape=layer.output_shape, buffer=steps)
            previous.s_out.connect(dense.s_in)
            dense.a_out.connect(lif.a_in)
            lif.s_out.connect(sink.a_in)
            if layer.recurrent:  # docs/fixed-point.md §4.9: a Dense from the LIF's s_out back to its a_in
                recurrent = lava.Dense(weights=np.asarray(_lava_weights(layer.recurrent_weight, layer.recurrent_binary,
                                                                        layer.recurrent_weight_mant), dtype=np.int32),
                                       weight_exp=int(layer.recurrent_weight_exp - layer.recurrent_binary),
                                       num_message_bits=0)
                lif.s_out.connect(recurrent.s_in)
                recurrent.a_out.connect(lif.a_in)
                self._recurrent.append(recurrent)
            previous = lif
            self._dense.append(dense)
            self._lif.append(lif)
            self._sinks.append(sink)
        self._readout = None
        if not self.fx_net.layers[-1].spiking:
            self._readout = lava.Read(buffer=steps)
            self._readout.connect_var(self._lif[-1].v)
        self._state_readers: list[dict[str, Any]] = []
        if self.record:
            for lif in self._lif:
                readers = {name: lava.Read(buffer=steps) for name in ("u", "v")}
                for name, reader in readers.items():
                    reader.connect_var(getattr(lif, name))
                self._state_readers.append(readers)

    def start(self) -> LavaBuiltinRunner:
        """Nothing to do before the first sample: Lava compiles and starts its runtime on the first ``run``
        (a runtime created but never started cannot be stopped cleanly)."""
        return self

    def close(self) -> None:
        """Stop the Lava runtime; idempotent."""
        if self._started:
            self._started = False
            # compiled once, on the first sample; workers killed if Lava does not stop in time (workers.py)
            end_workers(self._workers, self._lif[-1].stop, lambda: self._lif[-1].runtime)

    def __enter__(self) -> LavaBuiltinRunner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reset(self) -> None:
        for dense, lif in zip(self._dense, self._lif):
            zeros = np.zeros(lif.u.shape, dtype=np.int32)
            lif.u.set(zeros)
            lif.v.set(zeros)
            dense.a_buff.set(np.zeros(dense.a_buff.shape, dtype=np.int32))
        for recurrent in self._recurrent:  # its delay buffer too (§3.8)
            recurrent.a_buff.set(np.zeros(recurrent.a_buff.shape, dtype=np.int32))

    def run_sample(self, sample: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """One sample (steps, n_in) integers in [0, 255] -> (spikes per layer (steps, n) int8, output
        (steps, n_out) int64), as ``simulate`` returns them for batch element 0. With ``record``, u and v of the
        sample are then in :meth:`last_states`."""
        sample = np.asarray(sample)
        if sample.shape != (self.steps, *self.fx_net.input_shape):
            raise ValueError(f"sample must have shape {(self.steps, *self.fx_net.input_shape)}, got {sample.shape}")
        if sample.size and (sample.min() < 0 or sample.max() > SPEC.input_max):
            raise ValueError(f"inputs must lie in [0, {SPEC.input_max}] (docs/fixed-point.md §5.3)")
        if not self._fresh:
            self._reset()
        data = np.ascontiguousarray(sample.T, dtype=np.int32)
        if self._started:
            self._source.data.set(data)
        else:  # not compiled yet: Var.set needs a runtime, so the sample becomes the initial value
            self._source.data.init = data
        self._fresh = False
        if not self._started:
            begin = time.perf_counter()
            self._started = True  # from here on the runtime may hold worker processes: close() must stop it
            with self._workers.starting():
                self._lif[-1].create_runtime(run_cfg=self._lava.Loihi2SimCfg(select_tag="fixed_pt"))
            self.compile_seconds = time.perf_counter() - begin
        with self._workers.watching():  # a worker that dies mid-run raises here instead of hanging the run
            self._lif[-1].run(condition=self._lava.RunSteps(num_steps=self.steps))
            spikes = [np.asarray(sink.data.get()).T.astype(np.int8) for sink in self._sinks]
            readout = None if self._readout is None else np.asarray(self._readout.data.get())
        output = spikes[-1].astype(np.int64) if readout is None else readout.T.astype(np.int64)
        return spikes, output

    def last_states(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """u and v per layer, (steps, *shape) int64 after reset, of the last sample run (``record=True``)."""
        if not self.record:
            raise ValueError("this runner was built with record=False; build it with record=True to read u and v")
        return tuple([np.asarray(readers[name].data.get()).T.astype(np.int64) for readers in self._state_readers]
                     for name in ("u", "v"))

    def run(self, inputs: np.ndarray, record: bool = False) -> SimulationResult:
        """``inputs`` (steps, batch, n_in): each batch element run as its own sample, from the initial state.
        Returns a :class:`SimulationResult`, with u and v when ``record`` (the runner must record)."""
        inputs = np.asarray(inputs)
        if inputs.dtype.kind not in "iub" or inputs.ndim != 3:
            raise ValueError(f"inputs must be integers of shape (steps, batch, n_in), got {inputs.dtype} "
                             f"{inputs.shape}")
        if record and not self.record:
            raise ValueError("record=True needs a runner built with record=True")
        per_sample, states = [], []
        for b in range(inputs.shape[1]):
            per_sample.append(self.run_sample(inputs[:, b]))
            if record:
                states.append(self.last_states())
        return _stack(per_sample, states)


def _stack(per_sample: list[tuple[list[np.ndarray], np.ndarray]],
           states: list[tuple[list[np.ndarray], list[np.ndarray]]] = ()) -> SimulationResult:
    layers = len(per_sample[0][0])
    spikes = tuple(np.stack([spikes[k] for spikes, _ in per_sample], axis=1) for k in range(layers))
    output = np.stack([output for _, output in per_sample], axis=1)
    if not states:
        return SimulationResult(spikes=spikes, output=output, u=(), v=())
    u = tuple(np.stack([sample[0][k] for sample in states], axis=1) for k in range(layers))
    v = tuple(np.stack([sample[1][k] for sample in states], axis=1) for k in range(layers))
    return SimulationResult(spikes=spikes, output=output, u=u, v=v)


def run_lava_per_sample(fx_net: FixedPointNetwork, inputs: np.ndarray) -> SimulationResult:
    """The naive way: build, compile, run and stop a fresh Lava network for every batch element of
    ``inputs`` (steps, batch, n_in). Same result as :meth:`LavaBuiltinRunner.run`."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 3:
        raise ValueError(f"inputs must have shape (steps, batch, n_in), got {inputs.shape}")
    per_sample = []
    for b in range(inputs.shape[1]):
        with LavaBuiltinRunner(fx_net, inputs.shape[0]) as runner:
            per_sample.append(runner.run_sample(inputs[:, b]))
    return _stack(per_sample)
