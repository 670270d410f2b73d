"""The output layer's local error as a Lava process: :class:`ReadoutError` and its ``fixed_pt`` model.

Every step it receives the readout's current c = u + bias(t) (``current_in``, from
:class:`~.neuron.LearningNeuron`) and the sample's label (``label_in``, one graded value, streamed from the
host through an Injector), and sends the error e to the learning synapse's ``error_in``: inside the
learning window e = :func:`bso_deploy.hardware.lava.learning_arithmetic.readout_error` (c, label)
(docs/onchip-learning.md §5), outside it zeros (the synapse does not learn there). Restarts its step counter
every ``sample_steps``.

:class:`FeedbackError` is feedback alignment's error of a hidden learning layer (docs/onchip-learning.md §18):
every step it receives the frozen output layer's probe (spikes, u, v: BsoNeuron's ``probe_out``) and the
label, forms the output current c = u + bias(t) with the output layer's own bias (docs/fixed-point.md §3.4)
and sends, inside the hidden layer's learning window, ``feedback_error(readout_error(c, label), B)`` with the
fixed random matrix B of ``feedback_matrix`` to the hidden learning synapse's ``error_in``; zeros elsewhere.
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.lava.compat import ensure_lava_importable

ensure_lava_importable()  # Lava models are searched by executing this file: the shim must come first

from bso_deploy.hardware.lava.arithmetic import bias_value  # noqa: E402
from bso_deploy.hardware.lava.learning_arithmetic import feedback_error, feedback_matrix, readout_error  # noqa: E402
from bso_deploy.hardware.learning_rule import LearningRule  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

__all__ = ["FeedbackError", "PyFeedbackErrorModelFixed", "PyReadoutErrorModelFixed", "ReadoutError"]


def _check_sample_steps(sample_steps: int) -> int:
    if isinstance(sample_steps, bool) or not isinstance(sample_steps, (int, np.integer)) or sample_steps < 1:
        raise ValueError(f"sample_steps must be an integer >= 1, got {sample_steps!r}")
    return int(sample_steps)


class ReadoutError(AbstractProcess):
    """The on-chip error of an n-neuron readout against the label (module docstring). rule: the LearningRule;
    window_start: first step of the learning window within a sample; sample_steps: S."""

    def __init__(self, *, n: int, rule: LearningRule, window_start: int, sample_steps: int,
                 name: str | None = None) -> None:
        super().__init__(n=int(n), n_out=int(n), rule=rule.to_dict(), window_start=int(window_start), name=name)
        self.current_in = InPort(shape=(int(n),))
        self.label_in = InPort(shape=(1,))
        self.error_out = OutPort(shape=(int(n),))
        self.sample_steps = Var(shape=(1,), init=_check_sample_steps(sample_steps))
        self.step = Var(shape=(1,), init=0)


class FeedbackError(AbstractProcess):
    """Feedback alignment's error of an n_hidden-neuron learning layer from a frozen output layer of n_out
    neurons, P = rule.population per class (module docstring). rule: the hidden layer's LearningRule
    (feedback="random"); window_start: first step of the hidden layer's learning window; bias_mant, bias_exp
    (n_out,), bias_delay: the output layer's bias registers; sample_steps: S."""

    def __init__(self, *, n_hidden: int, n_out: int, rule: LearningRule, window_start: int,
                 bias_mant: np.ndarray, bias_exp: np.ndarray, bias_delay: int, sample_steps: int,
                 name: str | None = None) -> None:
        super().__init__(n_out=int(n_hidden), rule=rule.to_dict(), window_start=int(window_start), name=name)
        shape = (int(n_out),)
        n_classes = int(n_out) // rule.population
        self.probe_in = InPort(shape=(3, int(n_out)))  # BsoNeuron's probe rows: spikes, u, v
        self.label_in = InPort(shape=(1,))
        self.error_out = OutPort(shape=(int(n_hidden),))
        self.feedback = Var(shape=(int(n_hidden), n_classes),
                            init=feedback_matrix(int(n_hidden), n_classes, rule.feedback_seed))
        self.bias = Var(shape=shape, init=bias_value(np.broadcast_to(bias_mant, shape),
                                                     np.broadcast_to(bias_exp, shape)))
        self.bias_delay = Var(shape=(1,), init=int(bias_delay))
        self.sample_steps = Var(shape=(1,), init=_check_sample_steps(sample_steps))
        self.step = Var(shape=(1,), init=0)


class _WindowedErrorModel(PyLoihiProcessModel):
    """Each step: the inputs (``_receive``), the label, then the error of ``_error`` inside the learning
    window and zeros outside it, on ``error_out``."""

    label_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    error_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._rule = LearningRule.from_dict(self.proc_params["rule"])

    def _receive(self) -> np.ndarray:
        raise NotImplementedError

    def _error(self, received: np.ndarray, label: int, step: int) -> np.ndarray:
        raise NotImplementedError

    def run_spk(self) -> None:
        received = self._receive()
        label = int(np.asarray(self.label_in.recv())[0])
        step = int(self.step)
        t = step - self.proc_params["window_start"]
        if 0 <= t < self._rule.time_steps:
            error = self._error(received, label, step)
        else:
            error = np.zeros(self.proc_params["n_out"], dtype=np.int64)
        self.step = (step + 1) % int(self.sample_steps)
        self.error_out.send(error)


@implements(proc=ReadoutError, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutErrorModelFixed(_WindowedErrorModel):
    """``readout_error`` of the current in the learning window, zeros elsewhere."""

    current_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)

    def _receive(self) -> np.ndarray:
        return np.asarray(self.current_in.recv(), dtype=np.int64)

    def _error(self, received: np.ndarray, label: int, step: int) -> np.ndarray:
        return readout_error(received, label, self._rule)


@implements(proc=FeedbackError, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFeedbackErrorModelFixed(_WindowedErrorModel):
    """``feedback_error`` of the output's ``readout_error`` (c = u + bias(t)) in the hidden layer's learning
    window, zeros elsewhere (docs/onchip-learning.md §18)."""

    probe_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    feedback: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_delay: int = LavaPyType(int, np.int64)

    def _receive(self) -> np.ndarray:
        return np.asarray(self.probe_in.recv(), dtype=np.int64)[1]  # u after this step's update

    def _error(self, received: np.ndarray, label: int, step: int) -> np.ndarray:
        current = received + self.bias if step >= int(self.bias_delay) else received
        # one error per class: readout_error repeats it for the P members (onchip-learning.md §14)
        class_error = readout_error(current, label, self._rule)[::self._rule.population]
        return feedback_error(class_error, self.feedback, self._rule)
