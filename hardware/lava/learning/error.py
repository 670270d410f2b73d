"""The output layer's local error as a Lava process: :class:`ReadoutError` and its ``fixed_pt`` model.

Every step it receives the readout's current c = u + bias(t) (``current_in``, from
:class:`~.neuron.LearningNeuron`) and the sample's label (``label_in``, one graded value, streamed from the
host through an Injector), and sends the error e to the learning synapse's ``error_in``: inside the
learning window e = :func:`bso_deploy.hardware.lava.learning_arithmetic.readout_error` (c, label)
(docs/onchip-learning.md §5), outside it zeros (the synapse does not learn there). Restarts its step counter
every ``sample_steps``.
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.lava.compat import ensure_lava_importable

ensure_lava_importable()  # Lava models are searched by executing this file: the shim must come first

from bso_deploy.hardware.lava.learning_arithmetic import readout_error  # noqa: E402
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

__all__ = ["PyReadoutErrorModelFixed", "ReadoutError"]


class ReadoutError(AbstractProcess):
    """The on-chip error of an n-neuron readout against the label (module docstring). rule: the LearningRule;
    window_start: first step of the learning window within a sample; sample_steps: S."""

    def __init__(self, *, n: int, rule: LearningRule, window_start: int, sample_steps: int,
                 name: str | None = None) -> None:
        super().__init__(n=int(n), rule=rule.to_dict(), window_start=int(window_start), name=name)
        if isinstance(sample_steps, bool) or not isinstance(sample_steps, (int, np.integer)) or sample_steps < 1:
            raise ValueError(f"sample_steps must be an integer >= 1, got {sample_steps!r}")
        self.current_in = InPort(shape=(int(n),))
        self.label_in = InPort(shape=(1,))
        self.error_out = OutPort(shape=(int(n),))
        self.sample_steps = Var(shape=(1,), init=int(sample_steps))
        self.step = Var(shape=(1,), init=0)


@implements(proc=ReadoutError, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutErrorModelFixed(PyLoihiProcessModel):
    """``readout_error`` in the learning window, zeros elsewhere."""

    current_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    label_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    error_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._rule = LearningRule.from_dict(self.proc_params["rule"])

    def run_spk(self) -> None:
        current = np.asarray(self.current_in.recv(), dtype=np.int64)
        label = int(np.asarray(self.label_in.recv())[0])
        step = int(self.step)
        t = step - self.proc_params["window_start"]
        if 0 <= t < self._rule.time_steps:
            error = readout_error(current, label, self._rule)
        else:
            error = np.zeros(current.shape, dtype=np.int64)
        self.step = (step + 1) % int(self.sample_steps)
        self.error_out.send(error)
