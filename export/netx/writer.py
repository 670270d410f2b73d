"""Write a profile ``loihi`` :class:`FixedPointNetwork` as lava-dl's netx HDF5 network (``write_netx``).

Layout (what ``lava.lib.dl.netx.hdf5.Network`` 0.6 reads): ``/layer/<k>`` for k = 0 ... L-1, each a
``dense`` layer with ``shape`` (n_out,), ``weight`` (n_out, n_in), ``bias`` (n_out,) and ``neuron/{type,
iDecay, vDecay, vThMant, refDelay, gradedSpike}`` (type ``CUBA``); the integers come from
:func:`~.layers.netx_layer`. The file's attribute ``bso_deploy`` holds a JSON object with what netx does not
record: the input message bits to pass to the loader, latency, profile, layer names and the compiler's
quantization report. Load it with ``Network(net_config=path, input_message_bits=8)``: layer 0 receives
graded 8-bit inputs (docs/fixed-point.md §5.3); without that argument netx treats inputs as binary spikes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from bso_deploy.hardware.network import FixedPointNetwork
from bso_deploy.hardware.spec import SPEC

from bso_deploy.io import atomic_write_path

from .layers import NetxLayer, netx_layer

__all__ = ["INPUT_MESSAGE_BITS", "NETX_FORMAT_VERSION", "netx_layers", "read_netx_info", "write_netx"]

INPUT_MESSAGE_BITS = SPEC.input_bits  # pass as Network(..., input_message_bits=...) (graded input, §5.3)
NETX_FORMAT_VERSION = 1  # of the ``bso_deploy`` attribute
_NEURON_TYPE = "CUBA"


def netx_layers(fx_net: FixedPointNetwork) -> list[NetxLayer]:
    """The netx form of every layer of ``fx_net``; ValueError naming the first layer netx cannot express."""
    if not isinstance(fx_net, FixedPointNetwork):
        raise TypeError(f"expected a FixedPointNetwork, not {type(fx_net).__name__}")
    if fx_net.profile != "loihi":
        raise ValueError(f"netx runs Lava's built-in LIF and Dense: the network must be compiled for profile "
                         f"'loihi', got {fx_net.profile!r}; compile with profile='loihi', fold_thresholds=True, "
                         "netx_compatible=True")
    return [netx_layer(layer) for layer in fx_net.layers]


def _string(group: Any, name: str, value: str) -> None:
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])  # as lava-dl's own exporter writes it


def _write_layer(group: Any, layer: NetxLayer) -> None:
    n_out, n_in = layer.weight.shape
    _string(group, "type", "dense")
    group.create_dataset("shape", data=np.array([n_out], dtype=np.int64))
    group.create_dataset("inFeatures", data=n_in)
    group.create_dataset("outFeatures", data=n_out)
    group.create_dataset("weight", data=layer.weight.astype(np.int64))
    group.create_dataset("bias", data=layer.bias.astype(np.int64))
    neuron = group.create_group("neuron")
    _string(neuron, "type", _NEURON_TYPE)
    neuron.create_dataset("iDecay", data=layer.i_decay)
    neuron.create_dataset("vDecay", data=layer.v_decay)
    neuron.create_dataset("vThMant", data=layer.vth_mant)
    neuron.create_dataset("refDelay", data=1)  # read by netx, unused by its CUBA (LIF) neuron
    neuron.create_dataset("gradedSpike", data=False)


def write_netx(fx_net: FixedPointNetwork, path: str | os.PathLike) -> Path:
    """Write ``fx_net`` (profile ``loihi``, netx-expressible: see :mod:`.layers`) to ``path`` atomically.
    Returns the path. ValueError (nothing written) when a layer cannot be expressed."""
    layers = netx_layers(fx_net)
    info = {"format_version": NETX_FORMAT_VERSION, "input_message_bits": INPUT_MESSAGE_BITS,
            "input_shape": list(fx_net.input_shape), "latency": fx_net.latency, "profile": fx_net.profile,
            "layers": [layer.name for layer in layers], "readout": not fx_net.layers[-1].spiking,
            "quantization": [dict(item) for item in fx_net.quantization]}

    def write_to(temporary: Path) -> None:
        with h5py.File(temporary, "w") as file:
            file.attrs["bso_deploy"] = json.dumps(info, allow_nan=False)
            for index, layer in enumerate(layers):
                _write_layer(file.create_group(f"layer/{index}"), layer)

    return atomic_write_path(path, write_to)


def read_netx_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``bso_deploy`` attribute of a file written by :func:`write_netx` (ValueError if absent)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"netx file {os.fspath(path)} does not exist")
    with h5py.File(path, "r") as file:
        if "bso_deploy" not in file.attrs:
            raise ValueError(f"{os.fspath(path)} was not written by bso-deploy (no 'bso_deploy' attribute)")
        return json.loads(file.attrs["bso_deploy"])
