"""Deploy a fixed-point network (or a NIR graph) to Lava: :func:`deploy` -> :class:`LavaNetwork`.

Profile ``bso`` (and the float graph, ``floating_pt=True``) runs on this project's processes
(``bso_deploy.hardware.lava.processes``) through :class:`~.stream.StreamEngine` (hardware/lava/stream.py): per
layer a synapse process and a :class:`BsoNeuron`, the input through Lava's ``Injector``, every neuron's
``probe_out`` (spikes, u, v after the step) and, under ``fixed_pt``, its ``saturation_out`` (the counts of §5.6
so far in the sample; their value at a sample's last step becomes that sample's row of
``SimulationResult.saturation``) through one ``Extractor`` each. All processes are built with ``sample_steps = T``, so
a batch of samples runs as ONE Lava run of T * batch steps: every process restarts (state, delay buffer,
bias-delay counter) at each sample boundary, and the network is compiled once, on the first
:meth:`LavaNetwork.run`, and reused by later calls. ``copies`` P > 1 gives every port and population a leading
axis of P network copies (shared weights) that run P samples side by side (docs/lava.md).

Profile ``loihi`` runs on Lava's own ``Dense`` and ``LIF`` through
:class:`~bso_deploy.hardware.lava.builtin.LavaBuiltinRunner` (compiled once; u, v, delay buffers zeroed
between samples with ``Var.set``). Lava's LIF does not count saturation: its results have ``saturation = ()``,
as have the float network's (``floating_pt``).

:class:`LavaNetwork` is a context manager; :meth:`LavaNetwork.close` stops Lava's runtime (its worker
processes) and runs on exit also after errors and KeyboardInterrupt.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...errors import InvalidInputError, RangeError
from ...limits import check_memory
from ..compiler import compile_nir, float_layers, graph_input_shape, read_graph
from ..network import FixedPointNetwork, LayerSaturation, SimulationResult
from ..spec import SPEC
from .builtin import LavaBuiltinRunner
from .stream import StreamEngine

__all__ = ["LavaNetwork", "deploy"]

_TAGS = ("fixed_pt", "floating_pt")


class _BuiltinEngine:
    """Profile loihi: Lava's Dense + LIF through LavaBuiltinRunner (u and v read when recording)."""

    def __init__(self, fx_net: FixedPointNetwork, steps: int, record: bool) -> None:
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
            raise InvalidInputError(f"inputs must have shape (T, batch, *{shape}) with T, batch >= 1, got {x.shape}")
        check_memory(x.size * np.dtype(np.int64).itemsize, f"Lava inputs of shape {x.shape}")  # the int64 copy
        if self.tag == "floating_pt":
            if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
                raise InvalidInputError("inputs of a floating_pt network must be finite real numbers")
            return x.astype(np.float64)
        if x.dtype.kind not in "iub":
            raise InvalidInputError(f"inputs must be integers in [0, {SPEC.input_max}] (docs/fixed-point.md §5.3), got "
                             f"dtype {x.dtype}; quantize float inputs first (quantize_inputs)")
        if x.min() < 0 or x.max() > SPEC.input_max:
            raise RangeError(f"inputs must lie in [0, {SPEC.input_max}] (docs/fixed-point.md §5.3), got values in "
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
                self._engine = StreamEngine(self.network, self.tag, self.input_shape, steps, self.copies)
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
