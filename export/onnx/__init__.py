"""ONNX export (docs/export.md): one time step of a network as an ONNX graph with explicit state.

- :func:`export_checkpoint_to_onnx` (``bso-deploy export --format onnx``), :func:`export_onnx` and
  :func:`onnx_step_model` for NIR graphs and compiled networks; semantics ``float`` (the trained model's
  step, :mod:`.floating`) or ``fixed`` (docs/fixed-point.md exactly, :mod:`.fixed`);
- :func:`run_onnx` steps a written model over T steps with onnxruntime.

The runner imports with the package; the exporters (layer L4 of docs/architecture.md: the checkpoint export
needs the training package) load on first use (:mod:`bso_deploy.lazy`).
"""

from bso_deploy.lazy import lazy_exports

from .runner import OnnxRun, run_onnx

__all__ = [
    "SEMANTICS",
    "OnnxExport",
    "OnnxRun",
    "export_checkpoint_to_onnx",
    "export_onnx",
    "onnx_step_model",
    "run_onnx",
]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(
    ("SEMANTICS", "OnnxExport", "export_checkpoint_to_onnx", "export_onnx", "onnx_step_model"), ".export"), __all__)
