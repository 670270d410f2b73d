"""The profile-``bso`` neuron as a Lava process: :class:`BsoNeuron`, with a ``fixed_pt`` and a ``floating_pt`` model.

``fixed_pt`` (:class:`PyBsoNeuronModelFixed`) computes docs/fixed-point.md §3.1 - §3.7 with the Lava side's
own arithmetic (:func:`bso_deploy.hardware.lava.arithmetic.neuron_step`, written from the spec, not the
simulator's): per-neuron vth, bias_mant, bias_exp, one du, dv and bias_delay per population, reset ``zero`` or
``subtract``, and a non-spiking readout (``spiking=False``, §3.7: never fires, v is the output).

``floating_pt`` (:class:`PyBsoNeuronModelFloat`) is the float neuron of the graph
(:class:`~bso_deploy.hardware.quantize.FloatLayer`, the NIR importer's module ``from_nir``)::

    u' = (1 - du) u + a + du bias(t)     du = 1: no synaptic current (LIF); 1 - du = the CubaLIF current decay
    v' = (1 - dv) v + u'                 1 - dv = lambda, the membrane decay
    s  = v' > vth ;  v' <- 0 (zero) or v' - vth (subtract) where s

with floats, bias(t) = bias_mant for t >= bias_delay and 0 before (bias_exp is ignored). bias_mant is the
float layer's bias (``FloatLayer.bias``): what v gains per step once the current is steady, the value the
compiler adds to v (docs/fixed-point.md §10.2, times 64 K). The float graph filters a CubaLIF synapse's bias
through the current, as NIR does, so the model adds du bias(t) to u, whose steady state is then bias(t);
with du = 1 (LIF, IF) that is ``v' = lambda v + a + b``.

Both models restart every ``sample_steps`` steps (S > 0): before the first step of each sample u and v are
zeroed and the step counter used by bias_delay (§3.4) restarts at 0, so one Lava run can stream many samples
(docs/lava.md). ``step`` holds the index, within the sample, of the next step.

Ports: ``a_in`` (synaptic input, shape), ``s_out`` (spikes 0/1, shape), ``probe_out`` ((3, *shape): spikes,
u and v after the step, after reset, §5.5) for recording, and ``saturation_out`` ((3, *shape): the counts of
§5.6 so far in this sample, after the step: v clipped, u wrapped, |a| > 2**15 - 1; their value at a sample's
last step is that sample's count); an unconnected port costs nothing. ``fixed_pt`` keeps the counts in the
Vars ``saturation_v``, ``saturation_u``, ``saturation_a``, zeroed at the start of every sample;
``floating_pt`` has no registers to saturate and sends zeros.
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.lava.compat import ensure_lava_importable

ensure_lava_importable()  # Lava models are searched by executing this file: the shim must come first

from bso_deploy.hardware.lava.arithmetic import NeuronStep, neuron_config, neuron_step  # noqa: E402
from bso_deploy.hardware.spec import RESET_MODES, SPEC  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

__all__ = ["PROBE_ROWS", "SATURATION_ROWS", "BsoNeuron", "PyBsoNeuronModelFixed", "PyBsoNeuronModelFloat"]

PROBE_ROWS = ("spikes", "u", "v")  # what probe_out stacks on its first axis
SATURATION_ROWS = ("v", "u", "a")  # what saturation_out stacks: LayerSaturation's fields (§5.6)


def _sample_steps(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"sample_steps must be an integer >= 0 (0: never restart), got {value!r}")
    return int(value)


class BsoNeuron(AbstractProcess):
    """A population of profile-``bso`` LIF neurons (docs/fixed-point.md §3).

    shape: population shape (deploy.py puts a leading axis of network copies first when it runs several side
    by side; per-neuron arrays broadcast against it). du, dv: per population (fixed_pt: 12-bit registers,
    §3.1, §3.3; floating_pt: the fractions 1 - decay). vth, bias_mant, bias_exp: scalars or arrays that
    broadcast to ``shape`` (fixed_pt: integer registers, vth unshifted; floating_pt: floats, bias_exp ignored).
    bias_delay: first step (0-based, within a sample) at which the bias is added (§3.4). reset: "zero" or
    "subtract" (§3.6). spiking: False for the non-spiking readout (§3.7). sample_steps: restart every that
    many steps (0: never).
    """

    def __init__(self, *, shape: tuple[int, ...], du: float = 0, dv: float = 0, vth: object = 0,
                 bias_mant: object = 0, bias_exp: object = 0, bias_delay: int = 0, reset: str = "zero",
                 spiking: bool = True, sample_steps: int = 0, name: str | None = None) -> None:
        shape = tuple(int(size) for size in shape)
        super().__init__(shape=shape, reset=reset, spiking=bool(spiking), name=name)  # first: Lava's __del__ needs it
        if reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {reset!r}")
        if isinstance(bias_delay, bool) or not isinstance(bias_delay, (int, np.integer)) or bias_delay < 0:
            raise ValueError(f"bias_delay must be an integer >= 0, got {bias_delay!r}")
        sample_steps = _sample_steps(sample_steps)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.probe_out = OutPort(shape=(len(PROBE_ROWS), *shape))
        self.saturation_out = OutPort(shape=(len(SATURATION_ROWS), *shape))
        for row in SATURATION_ROWS:  # §5.6 counts within the current sample
            setattr(self, f"saturation_{row}", Var(shape=shape, init=0))
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=du)
        self.dv = Var(shape=(1,), init=dv)
        self.vth = Var(shape=shape, init=np.broadcast_to(vth, shape).copy())
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(bias_mant, shape).copy())
        self.bias_exp = Var(shape=shape, init=np.broadcast_to(bias_exp, shape).copy())
        self.bias_delay = Var(shape=(1,), init=int(bias_delay))
        self.sample_steps = Var(shape=(1,), init=sample_steps)
        self.step = Var(shape=(1,), init=0)


class _NeuronModel(PyLoihiProcessModel):
    """Shared plumbing: restart at sample boundaries, step counter, sending spikes and the probe."""

    def _update(self, a: np.ndarray, step: int) -> np.ndarray:
        raise NotImplementedError

    def run_spk(self) -> None:
        a = self.a_in.recv()
        step = int(self.step)
        counts = [getattr(self, f"saturation_{row}") for row in SATURATION_ROWS]
        if step == 0:  # first step of a sample (or of the run): the initial state of §3.8
            self.u[:] = 0
            self.v[:] = 0
            for count in counts:  # and counts per sample (§5.6)
                count[:] = 0
        spikes = self._update(a, step)
        sample_steps = int(self.sample_steps)
        self.step = (step + 1) % sample_steps if sample_steps > 0 else step + 1
        self.s_out.send(spikes)
        self.probe_out.send(np.stack([spikes.astype(self.u.dtype), self.u, self.v]))
        self.saturation_out.send(np.stack(counts).astype(self.u.dtype))


class FixedPointNeuronModel(_NeuronModel):
    """The int64 ports and variables of a bso-profile neuron (docs/fixed-point.md §2, §3), undecorated so that
    other neuron processes (the learning neuron of ``hardware/lava/learning``) can build on them; Lava reads
    the declarations through inheritance, as for its own LIF models."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    probe_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.state_bits)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.state_bits)
    du: int = LavaPyType(int, np.int64, precision=SPEC.decay_bits)
    dv: int = LavaPyType(int, np.int64, precision=SPEC.decay_bits)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.threshold_bits)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.bias_mant_bits)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.bias_exp_bits)
    bias_delay: int = LavaPyType(int, np.int64)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def advance(self, a: np.ndarray, step: int) -> NeuronStep:
        """One step of §3 on the Vars u and v (updated in place) with the synaptic input a; the constants are
        read from the registers at every step (the host may set them between runs)."""
        config = neuron_config(du=int(self.du), dv=int(self.dv), vth=self.vth, bias_mant=self.bias_mant,
                               bias_exp=self.bias_exp, bias_delay=int(self.bias_delay),
                               reset=self.proc_params["reset"], spiking=self.proc_params["spiking"])
        update = neuron_step(self.u, self.v, a, step, config)
        self.u[:] = update.u
        self.v[:] = update.v
        return update


@implements(proc=BsoNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBsoNeuronModelFixed(FixedPointNeuronModel):
    """docs/fixed-point.md §3 through :func:`~bso_deploy.hardware.lava.arithmetic.neuron_step` (int64 state),
    counting its events of §5.6."""

    saturation_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    saturation_v: np.ndarray = LavaPyType(np.ndarray, np.int64)
    saturation_u: np.ndarray = LavaPyType(np.ndarray, np.int64)
    saturation_a: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _update(self, a: np.ndarray, step: int) -> np.ndarray:
        update = self.advance(a, step)
        for row, event in zip(SATURATION_ROWS, (update.v_clipped, update.u_wrapped, update.a_out_of_range)):
            getattr(self, f"saturation_{row}")[:] += event
        return update.spikes


@implements(proc=BsoNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBsoNeuronModelFloat(_NeuronModel):
    """The float neuron of the graph (module docstring), float64."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    probe_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    saturation_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    saturation_v: np.ndarray = LavaPyType(np.ndarray, float)  # stays zero: floats do not saturate
    saturation_u: np.ndarray = LavaPyType(np.ndarray, float)
    saturation_a: np.ndarray = LavaPyType(np.ndarray, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    du: float = LavaPyType(float, float)
    dv: float = LavaPyType(float, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)
    bias_delay: int = LavaPyType(int, np.int64)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def _update(self, a: np.ndarray, step: int) -> np.ndarray:
        bias = self.du * self.bias_mant if step >= int(self.bias_delay) else 0.0  # filtered: u settles at + bias
        u = (1.0 - self.du) * self.u + np.asarray(a, dtype=float) + bias
        v = (1.0 - self.dv) * self.v + u
        if self.proc_params["spiking"]:
            fired = v > self.vth
            v = np.where(fired, v - self.vth if self.proc_params["reset"] == "subtract" else 0.0, v)
        else:
            fired = np.zeros(v.shape, dtype=bool)
        self.u[:] = u
        self.v[:] = v
        return fired.astype(float)
