"""NIR graph, compiled network or checkpoint -> ONNX step graph file (``export_onnx``,
``export_checkpoint_to_onnx``; the CLI's ``bso-deploy export --format onnx``).

Two semantics, chosen by name through :data:`SEMANTICS`:

- ``float``: the float network of the graph (:mod:`.floating`), i.e. the trained torch model's step;
- ``fixed``: the integer network the compiler makes for a profile (:mod:`.fixed`), exactly
  docs/fixed-point.md, so that stepping it matches ``simulate`` bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bso_deploy.hardware.compiler import compile_nir, float_layers, graph_input_shape, read_graph
from bso_deploy.hardware.network import FixedPointNetwork

from bso_deploy.io import atomic_write_bytes
from bso_deploy.options import ONNX_SEMANTICS as SEMANTICS

from ..netx.checkpoint import checkpoint_graph, quantization_notes
from .fixed import fixed_step_model
from .floating import float_step_model

__all__ = ["SEMANTICS", "OnnxExport", "export_checkpoint_to_onnx", "export_onnx", "onnx_step_model"]


@dataclass(frozen=True)
class OnnxExport:
    """What was written: the file, the semantics, the compiled network (fixed only) and notes on rounding."""

    path: Path
    semantics: str
    network: FixedPointNetwork | None
    notes: tuple[str, ...]


def _check_semantics(semantics: str) -> None:
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown ONNX semantics {semantics!r}; valid: {', '.join(SEMANTICS)}")


def onnx_step_model(source: Any, semantics: str = "float", profile: str = "bso", input_scale: float | None = None,
                    weight_bits: int | None = None, dt: float | None = None, time_steps: int | None = None,
                    metadata: dict | None = None):
    """The step model (``onnx.ModelProto``) of ``source``: a ``nir.NIRGraph``, a NIR file or, for ``fixed``,
    a :class:`FixedPointNetwork` (used as it is). ``profile``, ``input_scale``, ``weight_bits``,
    ``time_steps`` are the compiler's options (fixed only); ``dt`` the graph's time step if it records none."""
    _check_semantics(semantics)
    if isinstance(source, FixedPointNetwork):
        if semantics != "fixed":
            raise ValueError("a FixedPointNetwork has fixed-point semantics only; export its NIR graph for float")
        return fixed_step_model(source, metadata)
    graph = read_graph(source)
    if semantics == "fixed":
        fx_net = compile_nir(graph, profile=profile, input_scale=input_scale, weight_bits=weight_bits, dt=dt,
                             time_steps=time_steps)
        return fixed_step_model(fx_net, metadata)
    return float_step_model(float_layers(graph, "bso", dt), graph_input_shape(graph), metadata)


def export_onnx(source: Any, path: str | os.PathLike, semantics: str = "float", **options: Any) -> Path:
    """Write the step model of ``source`` (see :func:`onnx_step_model`, whose options it takes) to ``path``
    atomically; returns the path."""
    model = onnx_step_model(source, semantics, **options)
    return atomic_write_bytes(path, model.SerializeToString())


def export_checkpoint_to_onnx(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                              semantics: str = "float", profile: str = "bso", input_scale: float | None = None,
                              weight_bits: int | None = None, time_steps: int | None = None,
                              dt: float | None = None) -> OnnxExport:
    """A checkpoint's step model, through the same NIR graph as ``--format nir``; fixed semantics compile
    it for ``profile`` (a profile's refusals, e.g. the subtractive reset in ``loihi``, raise ValueError)."""
    _check_semantics(semantics)
    graph = checkpoint_graph(checkpoint_path, dt)
    metadata = {"checkpoint": os.path.basename(os.fspath(checkpoint_path))}
    if semantics == "float":
        path = export_onnx(graph, out_path, "float", metadata=metadata)
        return OnnxExport(path=path, semantics=semantics, network=None, notes=())
    fx_net = compile_nir(graph, profile=profile, input_scale=input_scale, weight_bits=weight_bits,
                         time_steps=time_steps)
    path = export_onnx(fx_net, out_path, "fixed", metadata=metadata)
    return OnnxExport(path=path, semantics=semantics, network=fx_net, notes=quantization_notes(fx_net))
