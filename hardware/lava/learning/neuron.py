"""The learning layer's neuron as a Lava process: :class:`LearningNeuron` and its ``fixed_pt`` model.

The update is the profile-``bso`` neuron of docs/fixed-point.md §3 through the Lava side's own
:func:`~bso_deploy.hardware.lava.arithmetic.neuron_step` (as :class:`bso_deploy.hardware.lava.processes.neuron.
BsoNeuron` does). What the learning rule needs besides the spikes leaves on two more ports, every step:

- ``v_out``: v before reset (docs/onchip-learning.md §4: the postsynaptic factor reads it; for a readout,
  which never resets, it is v), to :class:`~.synapse.LearningSynapse`'s ``post_in``;
- ``current_out``: c = u + bias(t), what v gains this step (§5: the readout error's input), to
  :class:`~.error.ReadoutError`.

Its bias_mant register is the deployed one (``bias_base``) plus the learned biases' integer parts that
arrive on ``bias_in`` from the synapse each step, saturated to 13 bits (docs/onchip-learning.md §15).

``probe_out`` sends (spikes, u, v after reset) for recording, as BsoNeuron's does. With ``sample_steps`` S
the neuron restarts (u = v = 0, bias-delay step counter 0) every S steps.
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.lava.compat import ensure_lava_importable

ensure_lava_importable()  # Lava models are searched by executing this file: the shim must come first

from bso_deploy.hardware.lava.processes.neuron import FixedPointNeuronModel  # noqa: E402
from bso_deploy.hardware.spec import RESET_MODES, SPEC  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

__all__ = ["LearningNeuron", "PyLearningNeuronModelFixed"]


class LearningNeuron(AbstractProcess):
    """n profile-``bso`` neurons (docs/fixed-point.md §3) that also send v before reset and u + bias(t).

    du, dv: 12-bit registers of the population; vth, bias_mant, bias_exp: per neuron (n,); bias_delay: first
    step within a sample with the bias (§3.4); reset: "zero" | "subtract"; spiking: False for a readout (§3.7);
    sample_steps: S, the neuron restarts every S steps."""

    def __init__(self, *, n: int, du: int, dv: int, vth: np.ndarray, bias_mant: np.ndarray, bias_exp: np.ndarray,
                 bias_delay: int, reset: str, spiking: bool, sample_steps: int, name: str | None = None) -> None:
        super().__init__(n=int(n), reset=reset, spiking=bool(spiking), name=name)
        if reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {reset!r}")
        if isinstance(sample_steps, bool) or not isinstance(sample_steps, (int, np.integer)) or sample_steps < 1:
            raise ValueError(f"sample_steps must be an integer >= 1, got {sample_steps!r}")
        shape = (int(n),)
        self.a_in = InPort(shape=shape)
        self.bias_in = InPort(shape=shape)  # learned b >> bias_shift (onchip-learning.md §15)
        self.s_out = OutPort(shape=shape)
        self.v_out = OutPort(shape=shape)
        self.current_out = OutPort(shape=shape)
        self.probe_out = OutPort(shape=(3, *shape))
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=int(du))
        self.dv = Var(shape=(1,), init=int(dv))
        self.vth = Var(shape=shape, init=np.broadcast_to(vth, shape).copy())
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(bias_mant, shape).copy())
        self.bias_base = Var(shape=shape, init=np.broadcast_to(bias_mant, shape).copy())  # the deployed bias_mant
        self.bias_exp = Var(shape=shape, init=np.broadcast_to(bias_exp, shape).copy())
        self.bias_delay = Var(shape=(1,), init=int(bias_delay))
        self.sample_steps = Var(shape=(1,), init=int(sample_steps))
        self.step = Var(shape=(1,), init=0)


@implements(proc=LearningNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLearningNeuronModelFixed(FixedPointNeuronModel):
    """docs/fixed-point.md §3 through ``neuron_step``, which also gives v before reset and u + bias(t)."""

    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    current_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    bias_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    bias_base: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.bias_mant_bits)

    def run_spk(self) -> None:
        a = np.asarray(self.a_in.recv(), dtype=np.int64)
        learned = np.asarray(self.bias_in.recv(), dtype=np.int64)  # floor(b / 2**bias_shift), onchip-learning.md §15
        self.bias_mant[:] = np.clip(self.bias_base + learned, SPEC.bias_mant_min, SPEC.bias_mant_max)
        step = int(self.step)
        if step == 0:  # a sample's first step: the initial state of §3.8
            self.u[:] = 0
            self.v[:] = 0
        update = self.advance(a, step)
        self.step = (step + 1) % int(self.sample_steps)
        self.s_out.send(update.spikes)
        self.v_out.send(update.v_before_reset)
        self.current_out.send(update.current)
        self.probe_out.send(np.stack([update.spikes, update.u, update.v]))
