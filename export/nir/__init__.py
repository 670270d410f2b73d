"""NIR export and import for bso-deploy (docs/nir.md).

- :func:`to_nir` turns a trained :class:`~bso_deploy.network.SpikingNetwork` into a ``nir.NIRGraph``;
- :func:`export_checkpoint_to_nir` does the same for a checkpoint file and writes the graph atomically;
- :func:`from_nir` runs any supported NIR graph (or file) step by step as a torch module;
- :func:`check_graph` is the graph check every backend (float importer, compiler) applies.

Reading, checking and running graphs (layer L1c of docs/architecture.md) is imported with the package. The
two exporters need the training package (L4) and load on first use (:mod:`bso_deploy.lazy`), so reading a
graph never imports training code.
"""

from bso_deploy.lazy import lazy_exports

from .executor import NIRExecutor
from .files import read_nir_file, write_nir
from .importer import SUPPORTED_NODE_TYPES, from_nir
from .metadata import DEFAULT_DT, NIRExportWarning
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
__getattr__, __dir__ = lazy_exports(__name__, {"to_nir": ".export", "export_checkpoint_to_nir": ".checkpoint"},
                                    __all__)
