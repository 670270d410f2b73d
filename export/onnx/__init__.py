"""ONNX export (docs/export.md): one time step of a network as an ONNX graph with explicit state.

- :func:`export_checkpoint_to_onnx` (``bso-deploy export --format onnx``), :func:`export_onnx` and
  :func:`onnx_step_model` for NIR graphs and compiled networks; semantics ``float`` (the trained model's
  step, :mod:`.floating`) or ``fixed`` (docs/fixed-point.md exactly, :mod:`.fixed`);
- :func:`run_onnx` steps a written model over T steps with onnxruntime.
"""

from .export import SEMANTICS, OnnxExport, export_checkpoint_to_onnx, export_onnx, onnx_step_model
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
