"""NIR export and import for bso-deploy (docs/nir.md).

- :func:`to_nir` turns a trained :class:`~bso_deploy.network.SpikingNetwork` into a ``nir.NIRGraph``;
- :func:`export_checkpoint_to_nir` does the same for a checkpoint file and writes the graph atomically;
- :func:`from_nir` runs any supported NIR graph (or file) step by step as a torch module;
- :func:`check_graph` is the graph check every backend (float importer, compiler) applies.
"""

from .checkpoint import export_checkpoint_to_nir
from .executor import NIRExecutor
from .export import DEFAULT_DT, NIRExportWarning, to_nir
from .files import read_nir_file, write_nir
from .importer import SUPPORTED_NODE_TYPES, from_nir
from .validate import CheckedGraph, check_graph

__all__ = [
    "DEFAULT_DT",
    "SUPPORTED_NODE_TYPES",
    "CheckedGraph",
    "NIRExecutor",
    "NIRExportWarning",
    "check_graph",
    "export_checkpoint_to_nir",
    "from_nir",
    "read_nir_file",
    "to_nir",
    "write_nir",
]
