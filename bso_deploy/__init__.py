"""bso-deploy: train binary SNNs online, export through NIR, deploy to fixed-point hardware.

The public API, one name per step of the pipeline (README.md, "Python API"):

- train: :class:`TrainConfig`, :class:`TrainingRun`; data as arrays: :func:`dataset_samples`;
- NIR: :func:`to_nir` (trained model -> ``nir.NIRGraph``), :func:`from_nir` (graph -> float torch module);
- fixed point: :func:`compile_nir` (graph -> :class:`FixedPointNetwork`, its :class:`QuantizationReport`),
  :func:`from_netx` (a lava-dl netx file, no re-quantization), :func:`quantize_inputs`,
  :func:`append_zero_steps`;
- run and compare: :func:`simulate` (NumPy), :class:`TorchReference` (torch), :func:`deploy` (Lava),
  :func:`check_parity`.

Each name is imported from its module on first use (PEP 562), so ``import bso_deploy`` loads neither torch
nor NumPy; the modules themselves (``bso_deploy.hardware.simulator``, ...) stay importable as before.
"""

from __future__ import annotations

from types import MappingProxyType

from ._version import __version__
from .lazy import lazy_exports

# public name -> the module that defines it; the module is imported on first access of the name
_PUBLIC = MappingProxyType({
    "TrainConfig": "bso_deploy.config",
    "TrainingRun": "bso_deploy.run",
    "dataset_samples": "bso_deploy.parity_data",
    "to_nir": "bso_deploy.export.nir",
    "from_nir": "bso_deploy.export.nir",
    "compile_nir": "bso_deploy.hardware.compiler",
    "QuantizationReport": "bso_deploy.hardware.compile_report",
    "FixedPointNetwork": "bso_deploy.hardware.network",
    "from_netx": "bso_deploy.export.netx",
    "quantize_inputs": "bso_deploy.hardware.quantize",
    "append_zero_steps": "bso_deploy.hardware.network",
    "simulate": "bso_deploy.hardware.simulator",
    "TorchReference": "bso_deploy.hardware.torch_reference",
    "deploy": "bso_deploy.hardware.lava.deploy",
    "check_parity": "bso_deploy.hardware.parity",
})

__all__ = ["__version__", *sorted(_PUBLIC)]
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, __all__)
