"""The learning binary synapse as a Lava process: :class:`LearningSynapse` and its ``fixed_pt`` model.

Spiking phase (every step; docs/fixed-point.md §4.6 - §4.8, docs/onchip-learning.md §11): the learning
synapse delays its input, not its sum. It sends ``weight_mant * sum_j W_ij x_j`` shifted by weight_exp for the
input x of the previous step (``pre_buff``, zero on a sample's first step) with the signs as they are after
the previous step's learning phase, so a flip acts from the next step on; then it receives the layer input of
this step on ``s_in`` into ``pre_buff``, then the postsynaptic voltage (``post_in``: v before reset, from
:class:`~.neuron.LearningNeuron`) and the error (``error_in``: from :class:`~.error.ReadoutError` or from the
host). Sending first and receiving the feedback last keeps the loop synapse -> neuron -> (error) -> synapse
free of deadlock.

Learning phase (Lava's ``run_lrn``, only at the steps of the learning window, ``lrn_guard``;
docs/onchip-learning.md §5): one call of the Lava side's own
:func:`bso_deploy.hardware.lava.learning_arithmetic.learning_update` (written from docs/onchip-learning.md
§3 - §8, not the NumPy rule's) on (signs, momenta, traces, second moments, counter) with the delivered input,
the voltage, the thresholds and the error; flipped signs act on the sums computed from the next step on. Then
the model reports the step to the host on ``report_out`` (an external pipe, as Lava's Extractor uses): the
counter, the time-step index and the packed flip mask, and with ``record`` the whole learning state
(:data:`REPORT_FIELDS`).

The signs are stored 1 bit per synapse (``weight_bits`` = ``np.packbits(sign > 0)``, C order). With
``sample_steps`` S every process restarts each S steps: delayed input (the delay buffer), traces, error and
surrogate go back to zero at a sample's first step (§3.8; docs/onchip-learning.md §11), while signs,
momenta, second moments and the counter persist.
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.lava.compat import ensure_lava_importable

ensure_lava_importable()  # Lava models are searched by executing this file: the shim must come first

from bso_deploy.hardware.lava.arithmetic import SynapseConfig, synapse_config, synapse_step  # noqa: E402
from bso_deploy.hardware.lava.learning_arithmetic import learning_update  # noqa: E402
from bso_deploy.hardware.learning_rule import LearningRule  # noqa: E402
from bso_deploy.hardware.spec import SPEC  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

__all__ = ["REPORT_FIELDS", "LearningSynapse", "PyLearningSynapseModelFixed", "report_layout"]

# What a report holds after its two header words (counter after the step, time-step index t), in order.
REPORT_FIELDS = ("flips", "weight", "trace", "momentum", "second_moment", "error", "surrogate", "bias")


def report_layout(n_out: int, n_in: int, time_steps: int, record: bool) -> dict[str, slice]:
    """Where each field sits in a report vector (``"header"`` then :data:`REPORT_FIELDS`; without ``record``
    only the header and the packed flips). Packed fields are ``np.packbits`` of the (n_out, n_in) mask."""
    packed = -(-n_out * n_in // 8)
    sizes = {"header": 2, "flips": packed}
    if record:
        sizes.update(weight=packed, trace=n_in, momentum=n_out * n_in, second_moment=time_steps, error=n_out,
                     surrogate=n_out, bias=n_out)
    layout, start = {}, 0
    for name, size in sizes.items():
        layout[name] = slice(start, start + size)
        start += size
    return layout


class LearningSynapse(AbstractProcess):
    """1-bit dense synapses (n_out, n_in) that learn by the rule of docs/onchip-learning.md (module docstring).

    signs: -1/+1 (n_out, n_in); weight_mant, weight_exp: the layer's magnitude and exponent (§4.6, §4.7);
    input_max: bound of the input values (1 for spikes, 255 for graded layer-0 input). rule: the
    LearningRule. window_start: first step (within a sample) of the learning window, ``learning_window``'s
    start. vth: the postsynaptic thresholds (n_out,) of a spiking layer, None for a readout (h = 1, §4).
    momentum, second_moment, counter: the learning state to start from. sample_steps: S, steps per sample.
    shift_rounding: the layer's rounding of a negative weight_exp, "floor" or "nearest" (§4.7).
    record: report the whole state at every learning step; report_buffer: capacity of the report pipe.
    """

    def __init__(self, *, signs: np.ndarray, weight_mant: int, weight_exp: int, input_max: int,
                 rule: LearningRule, window_start: int, vth: np.ndarray | None, momentum: np.ndarray,
                 second_moment: np.ndarray, counter: int, sample_steps: int, record: bool = False,
                 report_buffer: int = 64, shift_rounding: str = "floor", bias: np.ndarray | None = None,
                 name: str | None = None) -> None:
        signs = np.asarray(signs, dtype=np.int64)
        if signs.ndim != 2 or not np.all(np.abs(signs) == 1):
            raise ValueError("signs must be a (n_out, n_in) array of -1/+1 (docs/fixed-point.md §4.6)")
        n_out, n_in = signs.shape
        layout = report_layout(n_out, n_in, rule.time_steps, record)
        super().__init__(shape=(n_out, n_in), rule=rule.to_dict(), window_start=int(window_start),
                         spiking=vth is not None, input_max=int(input_max), record=bool(record),
                         shift_rounding=shift_rounding,
                         report_size=layout["bias" if record else "flips"].stop, name=name)
        if isinstance(sample_steps, bool) or not isinstance(sample_steps, (int, np.integer)) or sample_steps < 1:
            raise ValueError(f"sample_steps must be an integer >= 1, got {sample_steps!r}")
        if not (1 <= window_start and window_start + rule.time_steps <= sample_steps):
            raise ValueError(f"the learning window [{window_start}, {window_start + rule.time_steps}) must lie "
                             f"within the {sample_steps} steps of a sample")
        self.s_in = InPort(shape=(n_in,))
        self.post_in = InPort(shape=(n_out,))
        self.error_in = InPort(shape=(n_out,))
        self.a_out = OutPort(shape=(n_out,))
        self.bias_out = OutPort(shape=(n_out,))  # b >> bias_shift, to the neuron (onchip-learning.md §15)
        self.report_out = OutPort(shape=(self.proc_params["report_size"],))
        self.report_out.flag_external_pipe(buffer_size=int(report_buffer))
        bits = np.packbits((signs > 0).reshape(-1))
        self.weight_bits = Var(shape=bits.shape, init=bits)
        self.weight_mant = Var(shape=(1,), init=int(weight_mant))
        self.weight_exp = Var(shape=(1,), init=int(weight_exp))
        self.vth = Var(shape=(n_out,), init=np.zeros(n_out, np.int64) if vth is None else np.asarray(vth))
        self.momentum = Var(shape=(n_out, n_in), init=np.asarray(momentum, dtype=np.int64).copy())
        self.trace = Var(shape=(n_in,), init=0)
        self.second_moment = Var(shape=(rule.time_steps,), init=np.asarray(second_moment, dtype=np.int64).copy())
        self.counter = Var(shape=(1,), init=int(counter))
        self.bias = Var(shape=(n_out,), init=np.zeros(n_out, np.int64) if bias is None else
                        np.asarray(bias, dtype=np.int64).copy())
        self.error = Var(shape=(n_out,), init=0)
        self.surrogate = Var(shape=(n_out,), init=0)
        self.pre_buff = Var(shape=(n_in,), init=0)  # the input of the previous step: delivered this step
        self.sample_steps = Var(shape=(1,), init=int(sample_steps))
        self.step = Var(shape=(1,), init=0)


@implements(proc=LearningSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLearningSynapseModelFixed(PyLoihiProcessModel):
    """Spiking phase: docs/fixed-point.md §4 through ``synapse_step``; learning phase: ``learning_update``
    (docs/onchip-learning.md §3 - §8). int64 throughout."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    post_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    error_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    bias_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    report_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    weight_bits: np.ndarray = LavaPyType(np.ndarray, np.uint8, precision=8)
    weight_mant: int = LavaPyType(int, np.int64, precision=SPEC.weight_bits - 1)
    weight_exp: int = LavaPyType(int, np.int64, precision=SPEC.weight_exp_bits)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.threshold_bits)
    momentum: np.ndarray = LavaPyType(np.ndarray, np.int64)
    trace: np.ndarray = LavaPyType(np.ndarray, np.int64)
    second_moment: np.ndarray = LavaPyType(np.ndarray, np.int64)
    counter: int = LavaPyType(int, np.int64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64)
    error: np.ndarray = LavaPyType(np.ndarray, np.int64)
    surrogate: np.ndarray = LavaPyType(np.ndarray, np.int64)
    pre_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._rule = LearningRule.from_dict(self.proc_params["rule"])
        self._signs: np.ndarray | None = None  # unpacked working copy of weight_bits, made on the first step
        self._synapse: SynapseConfig | None = None
        self._learn_step = -1  # time-step index t of this step's learning, -1 outside the window
        self._delivered = self._v = self._error = None

    def _use_signs(self, signs: np.ndarray) -> None:
        """The working signs and the spiking phase's synapse (§4.6, §4.7) made from them."""
        self._signs = signs
        self._synapse = synapse_config(weight=signs, binary=True, weight_mant=int(self.weight_mant),
                                       weight_exp=int(self.weight_exp), kind="dense", pool=(1, 1), stride=(1, 1),
                                       padding=(0, 0), shift_rounding=self.proc_params["shift_rounding"])

    def _load_signs(self) -> None:
        n_out, n_in = self.proc_params["shape"]
        flat = np.unpackbits(np.asarray(self.weight_bits, dtype=np.uint8), count=n_out * n_in)
        self._use_signs((2 * flat.astype(np.int64) - 1).reshape(n_out, n_in))

    def run_spk(self) -> None:
        if self._signs is None:
            self._load_signs()
        step = int(self.step)
        if step == 0:  # a sample's first step: §3.8 and docs/onchip-learning.md §11
            for var in (self.pre_buff, self.trace, self.error, self.surrogate):
                var[:] = 0
        self._delivered = self.pre_buff.astype(np.int64)
        self.a_out.send(synapse_step(self._delivered[None], self._synapse)[0])
        self.bias_out.send(np.floor_divide(self.bias.astype(np.int64), 2 ** self._rule.bias_shift))
        self.pre_buff[:] = np.asarray(self.s_in.recv(), dtype=np.int64)
        self._v = np.asarray(self.post_in.recv(), dtype=np.int64)
        self._error = np.asarray(self.error_in.recv(), dtype=np.int64)
        t = step - self.proc_params["window_start"]
        self._learn_step = t if 0 <= t < self._rule.time_steps else -1
        sample_steps = int(self.sample_steps)
        self.step = (step + 1) % sample_steps

    def lrn_guard(self) -> bool:
        return self._learn_step >= 0

    def run_lrn(self) -> None:
        vth = np.asarray(self.vth, dtype=np.int64) if self.proc_params["spiking"] else None
        update = learning_update(signs=self._signs, momentum=self.momentum, trace=self.trace,
                                 second_moment=self.second_moment, counter=int(self.counter), pre=self._delivered,
                                 v=self._v, vth=vth, error=self._error, t=self._learn_step, rule=self._rule,
                                 bias=self.bias)
        self.momentum[:] = update.momentum
        self.trace[:] = update.trace
        self.second_moment[:] = update.second_moment
        self.counter = update.counter
        self.error[:] = self._error
        self.surrogate[:] = update.surrogate
        self.bias[:] = update.bias
        if update.flips.any():
            self._use_signs(update.signs)
            self.weight_bits[:] = np.packbits((update.signs > 0).reshape(-1))
        self._report(self._learn_step, update.flips)

    def _report(self, t: int, flips: np.ndarray) -> None:
        parts = [np.array([int(self.counter), t], dtype=np.int64), np.packbits(flips.reshape(-1)).astype(np.int64)]
        if self.proc_params["record"]:
            parts += [np.asarray(self.weight_bits, dtype=np.int64), self.trace, self.momentum.reshape(-1),
                      self.second_moment, self.error, self.surrogate, self.bias]
        self.report_out.csp_ports[-1].send(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
