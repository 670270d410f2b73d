"""Synapse stages as Lava processes: :class:`BinarySynapse` (1 bit per synapse) and :class:`FullPrecisionSynapse`.

A synapse stage maps its layer input x (``s_in``, the layer's ``input_shape``) to the synaptic input of its
neurons (``a_out``, ``output_shape``): sum pooling (docs/fixed-point.md §4.2), flatten (§4.3, dense), the
dense or conv connection (§4.4), the weight rule (§4.5 full precision, §4.6 binary), the exponent shift
(§4.7, rounded as the ``shift_rounding`` argument says: "floor" or "nearest") and the one-step delay (§4.8):
each step it first sends ``a_buff`` (the sum computed on the previous step, 0 on the first step of a sample)
and then computes the new sum into ``a_buff``, as Lava's Dense does.

The ``fixed_pt`` models compute with the Lava side's own arithmetic,
:func:`bso_deploy.hardware.lava.arithmetic.synapse_step` (written from the spec, not the simulator's), on the
effective weights of :func:`~bso_deploy.hardware.lava.arithmetic.synapse_config`, prepared once, on the first
step.

- :class:`BinarySynapse` stores the signs as 1 bit per synapse: ``weight_bits`` is ``np.packbits(sign > 0)``
  of the C-ordered weight array (uint8, ceil(n / 8) bytes), plus one ``weight_mant`` in [1, 127] and one
  ``weight_exp`` per layer (§4.6, §4.7).
- :class:`FullPrecisionSynapse` stores 8-bit Lava Dense weights (``weight`` in [-256, 255], §4.5) and
  ``weight_exp``; under ``floating_pt`` the same Var holds float weights and the model computes ``a = W x``
  (pooled, no exponent), still delayed by one step, as Lava's float Dense does.

``sample_steps`` S > 0 zeroes ``a_buff`` before the first step of every sample (§3.8), so a stream of
samples behaves as separate runs. ``step`` is the index, within the sample, of the next step.

``copies`` P > 0 gives both ports a leading axis of P independent copies of the layer that share its
weights (ports (P, *input_shape) and (P, *output_shape)): P samples side by side, as P copies of the
network on a chip would run them. P = 0 (default): one copy, no extra axis.
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.lava.compat import ensure_lava_importable

ensure_lava_importable()  # Lava models are searched by executing this file: the shim must come first

from bso_deploy.hardware.lava.arithmetic import SynapseConfig, connect, sum_pool, synapse_config, synapse_step  # noqa: E402
from bso_deploy.hardware.network import FixedPointLayer  # noqa: E402
from bso_deploy.hardware.spec import SHIFT_ROUNDINGS, SPEC  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

__all__ = [
    "BinarySynapse",
    "FullPrecisionSynapse",
    "PyBinarySynapseModelFixed",
    "PyFullPrecisionSynapseModelFixed",
    "PyFullPrecisionSynapseModelFloat",
    "pack_signs",
    "unpack_signs",
]


def pack_signs(signs: np.ndarray) -> np.ndarray:
    """+-1 signs -> 1 bit each (1 for +1), C order, packed 8 per byte (``np.packbits``)."""
    signs = np.asarray(signs)
    if signs.size and not np.all(np.abs(signs) == 1):
        raise ValueError("binary weights must be -1/+1 signs (docs/fixed-point.md §4.6)")
    return np.packbits((signs > 0).reshape(-1))


def unpack_signs(bits: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_signs`: int64 -1/+1 of ``shape``."""
    count = int(np.prod(shape))
    flat = np.unpackbits(np.asarray(bits, dtype=np.uint8).reshape(-1), count=count)
    return (2 * flat.astype(np.int64) - 1).reshape(shape)


class _Synapse(AbstractProcess):
    """Geometry and plumbing shared by both synapse processes (see the module docstring)."""

    def __init__(self, *, weight: np.ndarray, binary: bool, input_shape: tuple[int, ...], kind: str,
                 pool: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], input_max: int,
                 sample_steps: int, copies: int, shift_rounding: str, name: str | None) -> None:
        # Lava's AbstractProcess.__del__ needs its __init__ to have run: validate after it
        super().__init__(weight_shape=tuple(np.shape(weight)), input_shape=tuple(input_shape), kind=kind,
                         pool=tuple(pool), stride=tuple(stride), padding=tuple(padding), input_max=int(input_max),
                         shift_rounding=shift_rounding, name=name)
        if shift_rounding not in SHIFT_ROUNDINGS:
            raise ValueError(f"shift_rounding must be one of {SHIFT_ROUNDINGS}, got {shift_rounding!r}")
        for what, value in (("sample_steps", sample_steps), ("copies", copies)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
        lead = (int(copies),) if copies else ()
        # float weights (floating_pt): only the geometry is checked, on zeros of the same shape
        checked = weight if np.asarray(weight).dtype.kind in "iu" else np.zeros(np.shape(weight), dtype=np.int64)
        output_shape = _geometry(checked, binary, input_shape, kind, pool, stride, padding).output_shape
        self.proc_params.overwrite("output_shape", output_shape)
        self.s_in = InPort(shape=(*lead, *input_shape))
        self.a_out = OutPort(shape=(*lead, *output_shape))
        self.a_buff = Var(shape=(*lead, *output_shape), init=0)
        self.sample_steps = Var(shape=(1,), init=int(sample_steps))
        self.step = Var(shape=(1,), init=0)


def _geometry(weight: np.ndarray, binary: bool, input_shape, kind, pool, stride, padding) -> FixedPointLayer:
    """A FixedPointLayer that validates the geometry (shapes, pool, conv) exactly as the simulator reads it."""
    return FixedPointLayer(name="synapse", kind=kind, input_shape=tuple(input_shape), weight=weight, binary=binary,
                           pool=tuple(pool), stride=tuple(stride), padding=tuple(padding))


class BinarySynapse(_Synapse):
    """1-bit synapses (docs/fixed-point.md §4.6): ``signs`` (-1/+1; dense (n_out, n_in), conv (C_out, C_in, kh,
    kw)) stored packed in ``weight_bits``, magnitude ``weight_mant`` in [1, 127] and ``weight_exp`` per layer.
    input_max bounds the (unpooled) input values: 255 for layer 0 (graded, §5.3), 1 for spikes. shift_rounding:
    "floor" (Lava's Dense) or "nearest" (§4.7)."""

    def __init__(self, *, signs: np.ndarray, weight_mant: int, weight_exp: int, input_shape: tuple[int, ...],
                 kind: str = "dense", pool: tuple[int, int] = (1, 1), stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), input_max: int = 1, sample_steps: int = 0, copies: int = 0,
                 shift_rounding: str = "floor", name: str | None = None) -> None:
        signs = np.asarray(signs)
        super().__init__(weight=signs, binary=True, input_shape=input_shape, kind=kind, pool=pool, stride=stride,
                         padding=padding, input_max=input_max, sample_steps=sample_steps, copies=copies,
                         shift_rounding=shift_rounding, name=name)
        bits = pack_signs(signs)
        self.weight_bits = Var(shape=bits.shape, init=bits)
        self.weight_mant = Var(shape=(1,), init=int(weight_mant))
        self.weight_exp = Var(shape=(1,), init=int(weight_exp))


class FullPrecisionSynapse(_Synapse):
    """8-bit synapses (docs/fixed-point.md §4.5): ``weight`` as given to Lava's Dense ([-256, 255]; floats under
    ``floating_pt``) and ``weight_exp`` per layer. Geometry as :class:`BinarySynapse`."""

    def __init__(self, *, weight: np.ndarray, weight_exp: int = 0, input_shape: tuple[int, ...],
                 kind: str = "dense", pool: tuple[int, int] = (1, 1), stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), input_max: int = 1, sample_steps: int = 0, copies: int = 0,
                 shift_rounding: str = "floor", name: str | None = None) -> None:
        weight = np.asarray(weight)
        super().__init__(weight=weight, binary=False, input_shape=input_shape, kind=kind, pool=pool, stride=stride,
                         padding=padding, input_max=input_max, sample_steps=sample_steps, copies=copies,
                         shift_rounding=shift_rounding, name=name)
        self.weight = Var(shape=weight.shape, init=weight.copy())
        self.weight_exp = Var(shape=(1,), init=int(weight_exp))


class _SynapseModel(PyLoihiProcessModel):
    """Delay, restart and the send-then-compute order of §4.8; subclasses compute ``_compute(x)``."""

    def _compute(self, x: np.ndarray) -> np.ndarray:
        """a_next (copies, *output_shape) from the layer input x (copies, *input_shape); copies is 1 without a
        copies axis."""
        raise NotImplementedError

    def run_spk(self) -> None:
        step = int(self.step)
        if step == 0:  # first step of a sample: empty delay buffer (§3.8)
            self.a_buff[:] = 0
        self.a_out.send(self.a_buff)
        x = np.asarray(self.s_in.recv()).reshape(-1, *self.proc_params["input_shape"])  # (copies or 1, *input)
        self.a_buff[:] = self._compute(x).reshape(self.a_buff.shape)
        sample_steps = int(self.sample_steps)
        self.step = (step + 1) % sample_steps if sample_steps > 0 else step + 1


class _FixedSynapseModel(_SynapseModel):
    _synapse_config: SynapseConfig | None = None

    def _synapse(self) -> SynapseConfig:
        raise NotImplementedError

    def _compute(self, x: np.ndarray) -> np.ndarray:
        if self._synapse_config is None:  # weights are read once, on the first step of the run
            self._synapse_config = self._synapse()
        return synapse_step(x.astype(np.int64), self._synapse_config)

    def _config(self, weight: np.ndarray, binary: bool, weight_mant: int, weight_exp: int) -> SynapseConfig:
        params = self.proc_params
        return synapse_config(weight=weight, binary=binary, weight_mant=weight_mant, weight_exp=weight_exp,
                              kind=params["kind"], pool=params["pool"], stride=params["stride"],
                              padding=params["padding"], shift_rounding=params["shift_rounding"])


@implements(proc=BinarySynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBinarySynapseModelFixed(_FixedSynapseModel):
    """§4.6: the packed signs unpacked once, ``acc = weight_mant * sum_j sign_ij x_j`` shifted by weight_exp."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_bits: np.ndarray = LavaPyType(np.ndarray, np.uint8, precision=8)
    weight_mant: int = LavaPyType(int, np.int64, precision=SPEC.weight_bits - 1)
    weight_exp: int = LavaPyType(int, np.int64, precision=SPEC.weight_exp_bits)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def _synapse(self) -> SynapseConfig:
        signs = unpack_signs(self.weight_bits, self.proc_params["weight_shape"])
        return self._config(signs, True, int(self.weight_mant), int(self.weight_exp))


@implements(proc=FullPrecisionSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFullPrecisionSynapseModelFixed(_FixedSynapseModel):
    """§4.5: Lava Dense's sign mode, clip and mixed-mode truncation, then the connection and weight_exp."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=SPEC.weight_bits + 1)
    weight_exp: int = LavaPyType(int, np.int64, precision=SPEC.weight_exp_bits)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def _synapse(self) -> SynapseConfig:
        return self._config(np.asarray(self.weight, dtype=np.int64), False, 1, int(self.weight_exp))


@implements(proc=FullPrecisionSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFullPrecisionSynapseModelFloat(_SynapseModel):
    """Float weights: ``a = W . pool(x)`` (float64, no exponent), delayed by one step like the fixed model."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)
    weight_exp: int = LavaPyType(int, np.int64)
    sample_steps: int = LavaPyType(int, np.int64)
    step: int = LavaPyType(int, np.int64)

    def _compute(self, x: np.ndarray) -> np.ndarray:
        params = self.proc_params
        pooled = sum_pool(x.astype(np.float64), params["pool"])
        return connect(pooled, np.asarray(self.weight, dtype=np.float64), params["kind"], params["stride"],
                       params["padding"])
