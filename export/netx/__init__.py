"""lava-dl netx export (docs/export.md): a profile ``loihi`` network as lava-dl's HDF5 network format.

- :func:`export_checkpoint_to_netx`: checkpoint -> compiled network -> netx file (``bso-deploy export
  --format netx``); :func:`compile_for_netx` compiles a NIR graph the way netx needs (docs/fixed-point.md
  §10.5);
- :func:`write_netx`: any netx-expressible :class:`~bso_deploy.hardware.network.FixedPointNetwork`;
- load the file with ``lava.lib.dl.netx.hdf5.Network(net_config=path, input_message_bits=INPUT_MESSAGE_BITS)``.

The file format's reader and writer (layer L3 of docs/architecture.md) import with the package; the
checkpoint exporter (L4: it needs the training package) loads on first use (:mod:`bso_deploy.lazy`).
"""

from bso_deploy.lazy import lazy_exports

from .layers import NetxLayer, netx_effective_weight, netx_layer
from .reader import from_netx, netx_dense_synapse
from .writer import INPUT_MESSAGE_BITS, NETX_FORMAT_VERSION, netx_layers, read_netx_info, write_netx

__all__ = [
    "INPUT_MESSAGE_BITS",
    "NETX_FORMAT_VERSION",
    "NetxExport",
    "NetxLayer",
    "checkpoint_graph",
    "compile_for_netx",
    "export_checkpoint_to_netx",
    "from_netx",
    "netx_dense_synapse",
    "netx_effective_weight",
    "netx_layer",
    "netx_layers",
    "quantization_notes",
    "read_netx_info",
    "write_netx",
]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(
    ("NetxExport", "checkpoint_graph", "compile_for_netx", "export_checkpoint_to_netx", "quantization_notes"),
    ".checkpoint"), __all__)
