"""Read a lava-dl netx HDF5 network into a :class:`FixedPointNetwork` without re-quantization (``from_netx``).

A netx file already holds the integers Loihi runs. :func:`from_netx` maps them to the layers that lava-dl 0.6's
loader (``lava.lib.dl.netx.hdf5.Network``) builds on Lava's fixed_pt processes, so that ``simulate`` gives the
spikes and v of that Lava network exactly, step for step (docs/export.md "Importing netx"):

- ``input`` (no ``neuron``): the network input, shape as written ((C, H, W) or (n,)); netx passes it on as is.
- ``dense``: Lava's ``Dense`` with the weights, ``num_weight_bits`` and ``weight_exp`` that netx's
  ``optimize_weight_bits`` chooses (:func:`netx_dense_synapse`), then a ``LIF``.
- ``conv``: Lava's ``Conv``, which uses its integer kernel as is (no sign-mode clip or truncation, no exponent),
  as a cross-correlation once netx has flipped the kernel; then a ``LIF`` with a per-channel bias.
- ``flatten``: the next dense layer reads the conv output flattened in (C, H, W) C order (netx's
  ``transpose([2, 1, 0]).flatten()`` of Lava's (W, H, C)), which is docs/fixed-point.md §4.3.
- neuron ``CUBA``/``LOIHI``: ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant = bias`` with
  ``bias_exp = 6``, reset to zero (§3). A ``vThMant`` with ``vThMant << 6 > 2**23 - 1`` can never fire (v
  saturates first, §3.3): as the last layer it is the non-spiking readout of §3.7, exactly.

Each layer's integers are written in the terms of docs/fixed-point.md §4.5 - §4.7 by
:func:`~.synapse.floor_representation`
(weights that survive the §4.5 rule, an exponent, floor rounding). Anything else raises a one-line ValueError
naming the file, the layer index and the field
(an InvalidFileError). Lava's ``Conv`` is not the §4.5 rule of profile ``loihi``
(§6.1), so a network with conv layers comes back in profile ``bso``; a dense-only one in profile ``loihi``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, NamedTuple

import h5py
import numpy as np
from bso_deploy.export.nir.files import existing_file, read_hdf5_tree
from bso_deploy.hardware.layer import MAX_LAYER_NEURONS
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.spec import SPEC

from bso_deploy.errors import BsoDeployError, InvalidFileError, InvalidInputError

from .synapse import floor_representation, netx_dense_synapse

__all__ = ["from_netx", "netx_dense_synapse"]

_NEURON_TYPES = ("CUBA", "LOIHI")  # netx builds Lava's LIF for both
_NETX_UNBUILT = ("pool", "convT", "unpool", "average", "concat")  # netx 0.6 raises NotImplementedError
_NETX_BIAS_EXP = SPEC.state_shift  # netx gives every LIF bias_exp = 6
_REF_DELAY_MAX = 1  # what lava-dl writes; netx's LIF has no refractory period
_MAX_NUMBER = float(1 << 62)  # floats netx would truncate to int64 must lie within this magnitude


class _Group:
    """One ``/layer/<k>`` group, read (by :func:`~bso_deploy.export.nir.files.read_hdf5_tree`) as nested dicts
    of values, accessed as netx's ``NetDict`` reads it; every error is one line naming the file, the layer index
    and the field."""

    def __init__(self, path: str, index: int, group: Any, kind: str = "?", prefix: str = "") -> None:
        self.path, self.index, self.group, self.kind, self.prefix = path, index, group, kind, prefix
        if not isinstance(group, dict):
            raise self.fail("", "is not a group: not a lava-dl netx layer")

    def fail(self, field: str, message: str) -> InvalidFileError:
        return InvalidFileError(f"{self.path}: layer {self.index} ({self.kind}): {self.prefix}{field} {message}")

    def has(self, key: str) -> bool:
        return key in self.group

    def _value(self, key: str, missing: str) -> Any:
        if key not in self.group or isinstance(self.group[key], dict):
            raise self.fail(key, missing)
        return self.group[key]

    def string(self, key: str) -> str:
        value = self._value(key, "is missing: not a lava-dl netx layer")
        value = value.reshape(-1)[0] if isinstance(value, np.ndarray) and value.size else value
        if isinstance(value, bytes):
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                raise self.fail(key, "is not ASCII text") from None
        return str(value)

    def array(self, key: str) -> np.ndarray:
        """An integer array as netx reads it (``astype(int)``: floats truncate toward zero; NaN, Inf and values
        past int64 have no integer and are refused)."""
        value = np.asarray(self._value(key, "is missing"))
        if value.dtype.kind not in "iufb":
            raise self.fail(key, f"must hold real numbers, got dtype {value.dtype}")
        if value.dtype.kind == "f" and not np.all(np.abs(value) < _MAX_NUMBER):
            raise self.fail(key, f"holds NaN, Inf or values past +-2**62 ({value.dtype})")
        return value.astype(np.int64)

    def integer(self, key: str, low: int, high: int, hint: str) -> int:
        """A scalar field that netx uses as given: it must be an integer in [low, high]."""
        if key not in self.group or isinstance(self.group[key], dict):
            raise self.fail(key, f"is missing; {hint}")
        value = np.asarray(self.group[key])
        if value.size != 1 or value.dtype.kind not in "iufb" or not np.all(np.abs(value) < _MAX_NUMBER) or \
                value.reshape(-1)[0] != int(value.reshape(-1)[0]):
            raise self.fail(key, f"= {str(value.tolist())[:60]} must be one integer (one value per layer); {hint}")
        number = int(value.reshape(-1)[0])
        if not low <= number <= high:
            raise self.fail(key, f"= {number} is outside [{low}, {high}]; {hint}")
        return number

    def shape(self) -> tuple[int, ...]:
        """The layer's ``shape``: integers >= 1, at most :data:`MAX_LAYER_NEURONS` values in all."""
        shape = self.array("shape").reshape(-1)
        if shape.size == 0 or shape.size > 3 or np.any(shape < 1) or math.prod(shape.tolist()) > MAX_LAYER_NEURONS:
            raise self.fail("shape", f"= {shape.tolist()[:6]} must be 1 to 3 integers >= 1 of at most "
                            f"{MAX_LAYER_NEURONS} neurons")
        return tuple(int(v) for v in shape)


def _pair(group: _Group, key: str) -> tuple[int, int]:
    """stride/padding/dilation as lava-dl writes them, (H, W) order (netx reverses them to Lava's (X, Y))."""
    value = group.array(key).reshape(-1)
    if value.size == 1:
        return int(value[0]), int(value[0])
    if value.size != 2:
        raise group.fail(key, f"= {value.tolist()} must be one or two integers")
    return int(value[0]), int(value[1])


def _neuron(group: _Group, last: bool) -> dict[str, Any]:
    """The LIF netx builds from ``neuron`` (§3): du, dv, vth, spiking."""
    if not group.has("neuron"):
        raise group.fail("neuron", "is missing: netx then uses iDecay = 0, i.e. du = -1, which Lava's 12-bit du "
                         "cannot hold; export the layer with its CUBA neuron")
    neuron = _Group(group.path, group.index, group.group["neuron"], group.kind, "neuron/")
    kind = neuron.string("type")
    if kind not in _NEURON_TYPES:
        raise neuron.fail("type", f"{kind!r} is not supported: from_netx imports CUBA LIF neurons (netx's "
                         f"{' / '.join(_NEURON_TYPES)}), which run on Lava's LIF")
    du = neuron.integer("iDecay", 1, SPEC.decay_unity, "netx passes du = iDecay - 1 to Lava's 12-bit du") - 1
    dv = neuron.integer("vDecay", 0, SPEC.decay_max, "Lava's dv is a 12-bit register (docs/fixed-point.md §3.3)")
    vth = neuron.integer("vThMant", 0, np.iinfo(np.int32).max, "Lava's LIF vth is an unsigned integer")
    if neuron.has("refDelay"):
        neuron.integer("refDelay", 0, _REF_DELAY_MAX, "a refractory period longer than one step is not "
                       "modelled (netx's LIF has none): export refDelay = 1")
    if neuron.has("gradedSpike") and neuron.array("gradedSpike").any():
        raise neuron.fail("gradedSpike", "= True: netx 0.6 builds a binary-spiking LIF and ignores it, so the "
                         "file does not run as trained; train with graded_spike=False")
    if neuron.has("weight_exp") and neuron.array("weight_exp").any():
        raise neuron.fail("weight_exp", "is nonzero: netx 0.6 ignores this normalisation exponent, so the "
                         "file does not run as trained; train without a weight-scaling norm")
    if vth > SPEC.vth_max:  # vth << 6 > 2**23 - 1 >= v: can never fire (§3.3)
        if not last:
            raise neuron.fail("vThMant", f"= {vth}: vThMant << 6 exceeds v's saturation 2**23 - 1, so this "
                             "hidden layer never fires; use a threshold <= 131071")
        return {"du": du, "dv": dv, "vth": SPEC.vth_max, "spiking": False}
    return {"du": du, "dv": dv, "vth": vth, "spiking": True}


def _bias(group: _Group, shape: tuple[int, ...]) -> np.ndarray:
    """bias_mant per neuron in (C, H, W) / (n,) order, as netx broadcasts it (per neuron or per channel)."""
    if not group.has("bias"):
        return np.zeros(shape, dtype=np.int64)
    bias = group.array("bias")
    if len(shape) == 3 and bias.shape == (shape[2], shape[1], shape[0]):  # per neuron, Lava's (W, H, C)
        bias = bias.transpose(2, 1, 0)
    elif len(shape) == 3 and bias.reshape(-1).shape == (shape[0],):  # per channel
        bias = np.broadcast_to(bias.reshape(-1, 1, 1), shape)
    elif bias.size not in (1, math.prod(shape)):
        raise group.fail("bias", f"has shape {bias.shape}, which netx cannot broadcast to the layer's {shape}")
    bias = np.broadcast_to(bias.reshape(shape) if bias.size > 1 else bias.reshape(()), shape)
    if bias.min() < SPEC.bias_mant_min or bias.max() > SPEC.bias_mant_max:
        raise group.fail("bias", f"has values in [{bias.min()}, {bias.max()}], outside Lava's 13-bit bias_mant "
                         f"[{SPEC.bias_mant_min}, {SPEC.bias_mant_max}] (netx fixes bias_exp = {_NETX_BIAS_EXP})")
    return bias


def _no_delay(group: _Group) -> None:
    if group.has("delay"):
        raise group.fail("delay", "is present: axonal delays (Lava's DelayDense, or ignored by netx's conv) are "
                         "not modelled; train without delay=True")


def _dense(group: _Group, shape: tuple[int, ...] | None, flattened: bool, first: bool, last: bool,
           input_bits: int) -> tuple[FixedPointLayer, dict[str, Any]]:
    n_out = math.prod(group.shape())
    weight = group.array("weight")
    weight = weight.reshape(n_out, -1) if weight.ndim == 1 else weight
    if weight.ndim != 2 or weight.shape[0] != n_out:
        raise group.fail("weight", f"has shape {weight.shape}; a dense layer of {n_out} neurons needs ({n_out}, n_in)")
    _no_delay(group)
    if first:  # netx's network input is this Dense's (n_in,) port, whatever the input layer's shape
        if shape is not None and math.prod(shape) != weight.shape[1]:
            raise group.fail("weight", f"has {weight.shape[1]} inputs, but the input layer has shape {shape}")
        shape = (weight.shape[1],)
    elif len(shape) == 3 and not flattened:
        raise group.fail("type", f"'dense' follows a (C, H, W) = {shape} output without a 'flatten' layer, which "
                         "netx cannot connect")
    if math.prod(shape) != weight.shape[1]:
        raise group.fail("weight", f"has {weight.shape[1]} inputs, but the layer before gives {math.prod(shape)}")
    try:
        effective, shift, num_weight_bits = netx_dense_synapse(weight)
    except ValueError as error:
        raise group.fail("weight", f"cannot be carried: {error}") from None
    found = floor_representation(effective, shift)
    if found is None:
        raise group.fail("weight", f"(Lava's weights in [{effective.min()}, {effective.max()}], exponent {-shift}) "
                         "has no exact form in docs/fixed-point.md §4.5 - §4.7 (an odd mixed-sign weight above "
                         "127 in magnitude); re-export even weights")
    neuron = _neuron(group, last)
    layer = FixedPointLayer(name=f"layer{group.index}", kind="dense", input_shape=shape, weight=found[0],
                            weight_exp=found[1], bias_mant=_bias(group, (n_out,)), bias_exp=_NETX_BIAS_EXP, **neuron)
    changed = int(np.count_nonzero(effective != weight << shift))
    report = {"source": "netx", "netx_layer": group.index, "netx_type": "dense", "num_weight_bits": num_weight_bits,
              "weight_exponent": -shift, "weights_changed_by_lava": changed, "input_message_bits": input_bits}
    return layer, report


def _conv(group: _Group, shape: tuple[int, ...] | None, last: bool, input_bits: int
          ) -> tuple[FixedPointLayer, dict[str, Any]]:
    if shape is None or len(shape) != 3:
        raise group.fail("type", f"'conv' needs a (C, H, W) input (an 'input' layer or a conv before it), got "
                         f"{shape}; netx cannot infer it either")
    weight = group.array("weight")
    weight = weight.reshape(weight.shape[:4]) if weight.ndim == 5 and weight.shape[4] == 1 else weight
    if weight.ndim != 4 or weight.shape[1] != shape[0]:
        raise group.fail("weight", f"has shape {weight.shape}; a conv on {shape} needs (C_out, {shape[0]}, kh, kw)")
    if _pair(group, "dilation") != (1, 1):
        raise group.fail("dilation", f"= {_pair(group, 'dilation')}: only 1 is supported (docs/fixed-point.md §4.4)")
    group.integer("groups", 1, 1, "grouped convolutions are not supported (docs/fixed-point.md §4.4)")
    _no_delay(group)
    found = floor_representation(weight, 0)  # Lava's Conv applies its kernel as is: a = W * x, no exponent
    if found is None:
        raise group.fail("weight", f"in [{weight.min()}, {weight.max()}] has no exact form in docs/fixed-point.md "
                         "§4.5 - §4.7; re-export 8-bit even weights")
    neuron = _neuron(group, last)
    probe = FixedPointLayer(name="probe", kind="conv", input_shape=shape, weight=found[0],
                            stride=_pair(group, "stride"), padding=_pair(group, "padding"))
    expected = group.shape()
    if probe.output_shape != expected:
        raise group.fail("shape", f"= {expected} differs from the convolution's output {probe.output_shape}")
    layer = FixedPointLayer(name=f"layer{group.index}", kind="conv", input_shape=shape, weight=found[0],
                            weight_exp=found[1], stride=probe.stride, padding=probe.padding,
                            bias_mant=_bias(group, probe.output_shape), bias_exp=_NETX_BIAS_EXP, **neuron)
    return layer, {"source": "netx", "netx_layer": group.index, "netx_type": "conv", "input_message_bits": input_bits}


class _Chain(NamedTuple):
    """What the layers read so far give the next one: the current output shape ((C, H, W) / (n,), None before
    any), whether a ``flatten`` came since, the layers built and their reports."""

    shape: tuple[int, ...] | None = None
    flattened: bool = False
    layers: tuple[FixedPointLayer, ...] = ()
    reports: tuple[dict[str, Any], ...] = ()


def _read_input(group: _Group, chain: _Chain, last: bool, bits: int) -> _Chain:
    if group.index != 0:
        raise group.fail("type", "'input' is allowed as layer 0 only")
    if group.has("neuron"):
        raise group.fail("neuron", "is present: netx 0.6 builds an Input block whose input port is not connected "
                         "to its LIF (Lava cannot compile it); export the input block without neuron parameters")
    return chain._replace(shape=group.shape())


def _read_flatten(group: _Group, chain: _Chain, last: bool, bits: int) -> _Chain:
    if chain.shape is None or len(chain.shape) != 3:
        raise group.fail("type", f"'flatten' must follow a (C, H, W) output, got {chain.shape}")
    return chain._replace(flattened=True)


def _read_synapse(group: _Group, chain: _Chain, last: bool, bits: int) -> _Chain:
    bits = 0 if chain.layers else bits  # later layers receive the binary spikes of Lava's LIF
    if group.kind == "dense":
        layer, report = _dense(group, chain.shape, chain.flattened, not chain.layers, last, bits)
    else:
        layer, report = _conv(group, chain.shape, last, bits)
    return _Chain(layer.output_shape, False, (*chain.layers, layer), (*chain.reports, report))


_READERS = {"input": _read_input, "flatten": _read_flatten, "dense": _read_synapse, "conv": _read_synapse}


def _open(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the ``layer`` groups as dicts, the ``bso_deploy`` info) of the file, read through the bounded reader."""
    checked = existing_file(path, "netx file")
    try:
        is_hdf5 = h5py.is_hdf5(checked)
    except (OSError, RuntimeError, ValueError) as error:
        raise InvalidFileError(f"{path} is not a lava-dl netx file: it cannot be read ({error})") from None
    if not is_hdf5:
        raise InvalidFileError(f"{path} is not a lava-dl netx file: it is not HDF5")
    try:
        with h5py.File(checked, "r") as file:
            if not isinstance(file.get("layer", getlink=True), h5py.HardLink) or \
                    not isinstance(file.get("layer"), h5py.Group) or not len(file["layer"]):
                raise InvalidFileError(f"{path} is not a lava-dl netx file: it has no (non-empty) 'layer' group")
            layers = read_hdf5_tree(file["layer"], "layer")
            info = _info(path, file)
    except InvalidFileError as error:
        raise InvalidFileError(str(error) if path in str(error) else f"{path}: {error}") from None
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as error:  # h5py's errors on corrupt files
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise InvalidFileError(f"{path} is not a lava-dl netx file: HDF5 that cannot be read ({reason})") from None
    keys = sorted(layers, key=lambda key: (not key.isdigit(), int(key) if key.isdigit() else 0, key))
    if keys != [str(i) for i in range(len(keys))]:
        raise InvalidFileError(f"{path} is not a lava-dl netx file: 'layer' holds {keys[:6]}, not groups 0 ... L-1")
    return layers, info


def _info(path: str, file: Any) -> dict[str, Any]:
    """The ``bso_deploy`` attribute that :func:`write_netx` adds, or {} (files lava-dl writes have none)."""
    if "bso_deploy" not in file.attrs:
        return {}
    try:
        info = json.loads(file.attrs["bso_deploy"])
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidFileError(f"{path}: its 'bso_deploy' attribute is not JSON ({str(error)[:80]}); delete the "
                               "attribute") from None
    return info if isinstance(info, dict) else {}


def _input_bits(path: str, info: dict[str, Any], input_message_bits: int | None) -> int:
    if input_message_bits is None:  # what write_netx recorded, else netx's own default (binary spikes)
        input_message_bits = info.get("input_message_bits", 0)
    if isinstance(input_message_bits, bool) or not isinstance(input_message_bits, int) or \
            not 0 <= input_message_bits <= SPEC.input_bits:
        raise InvalidInputError(f"{path}: input_message_bits must be an integer in [0, {SPEC.input_bits}] (0: binary "
                         f"spikes, netx's default), got {input_message_bits!r}")
    return input_message_bits


def _named(layers: tuple[FixedPointLayer, ...], names: Any) -> tuple[FixedPointLayer, ...]:
    """The layer names that :func:`write_netx` recorded, when they fit; else ``layer<k>`` (k: the netx index)."""
    if isinstance(names, list) and len(names) == len(layers) and all(isinstance(n, str) and n for n in names) \
            and len(set(names)) == len(names):
        return tuple(dataclasses.replace(layer, name=name) for layer, name in zip(layers, names))
    return layers


def from_netx(path: str | os.PathLike, *, input_message_bits: int | None = None) -> FixedPointNetwork:
    """The network that lava-dl 0.6's ``netx.hdf5.Network(net_config=path, input_message_bits=...)`` runs on
    Lava's fixed_pt processes, as a :class:`FixedPointNetwork` (profile ``loihi``; ``bso`` when it has conv
    layers, see the module docstring) with ``input_scale=None`` (integer inputs).

    input_message_bits: what you pass to netx's loader; None takes the value recorded by :func:`write_netx`,
    else netx's default 0 (binary spikes: Lava treats every nonzero input as 1, so ``input_max`` = 1; with b bits
    ``input_max = 2**b - 1``). Shapes are ours: (C, H, W) where Lava has (W, H, C). ``quantization`` holds per
    layer what netx chose (``num_weight_bits``, ``weight_exponent``, ``weights_changed_by_lava``). ValueError,
    one line naming the file, layer index and field, for anything that netx does not run exactly as written."""
    path = os.fspath(path)
    layer_groups, info = _open(path)
    bits = _input_bits(path, info, input_message_bits)
    try:
        return _network(path, layer_groups, info, bits)
    except (ValueError, TypeError) as error:  # a field the constructors refuse (FixedPointLayer, ...)
        if isinstance(error, BsoDeployError):
            raise
        raise InvalidFileError(f"{path}: {error}") from None


def _network(path: str, layer_groups: dict[str, Any], info: dict[str, Any], bits: int) -> FixedPointNetwork:
    groups = [layer_groups[str(i)] for i in range(len(layer_groups))]
    kinds = [_Group(path, i, group).string("type") for i, group in enumerate(groups)]
    built = [i for i, kind in enumerate(kinds) if kind in ("dense", "conv")]
    chain = _Chain()
    for index, (group, kind) in enumerate(zip(groups, kinds)):
        layer_group = _Group(path, index, group, kind)
        if kind in _NETX_UNBUILT:
            raise layer_group.fail("type", f"{kind!r} is not built by lava-dl's netx 0.6 (NotImplementedError)")
        if kind not in _READERS:
            raise layer_group.fail("type", f"{kind!r} is not supported (from_netx reads {', '.join(_READERS)})")
        chain = _READERS[kind](layer_group, chain, bool(built) and index == built[-1], bits)
    if not chain.layers:
        raise InvalidFileError(f"{path}: the netx file has no dense or conv layer")
    layers = _named(chain.layers, info.get("layers"))
    profile = "bso" if any(layer.kind == "conv" for layer in layers) else "loihi"
    return FixedPointNetwork(profile=profile, input_shape=layers[0].input_shape, layers=layers,
                             quantization=chain.reports, input_scale=None, input_max=(1 << bits) - 1 if bits else 1)
