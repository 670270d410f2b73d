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

import importlib
from types import MappingProxyType
from typing import Any

from ._version import __version__

# public name -> "module:attribute"; the modules are imported on first access of the name
_PUBLIC = MappingProxyType({
    "TrainConfig": "bso_deploy.config:TrainConfig",
    "TrainingRun": "bso_deploy.run:TrainingRun",
    "dataset_samples": "bso_deploy.parity_data:dataset_samples",
    "to_nir": "bso_deploy.export.nir:to_nir",
    "from_nir": "bso_deploy.export.nir:from_nir",
    "compile_nir": "bso_deploy.hardware.compiler:compile_nir",
    "QuantizationReport": "bso_deploy.hardware.compile_report:QuantizationReport",
    "FixedPointNetwork": "bso_deploy.hardware.network:FixedPointNetwork",
    "from_netx": "bso_deploy.export.netx:from_netx",
    "quantize_inputs": "bso_deploy.hardware.quantize:quantize_inputs",
    "append_zero_steps": "bso_deploy.hardware.network:append_zero_steps",
    "simulate": "bso_deploy.hardware.simulator:simulate",
    "TorchReference": "bso_deploy.hardware.torch_reference:TorchReference",
    "deploy": "bso_deploy.hardware.lava.deploy:deploy",
    "check_parity": "bso_deploy.hardware.parity:check_parity",
})

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'bso_deploy' has no attribute {name!r}; its public names are "
                             f"{', '.join(sorted(_PUBLIC))}")
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
