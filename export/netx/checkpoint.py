"""Checkpoint or NIR graph -> netx file: compile for netx (:func:`compile_for_netx`) and write it.

:func:`export_checkpoint_to_netx` is what ``bso-deploy export CHECKPOINT --format netx`` calls: the
checkpoint goes through the NIR export (the same graph as ``--format nir``), the compiler with profile
``loihi``, ``fold_thresholds=True`` and ``netx_compatible=True`` (docs/fixed-point.md §10.5), and
:func:`~.writer.write_netx`. The result carries the compiled network, so callers can run ``simulate`` on
exactly the integers in the file, and plain-language notes on what was rounded.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bso_deploy.hardware.compiler import compile_nir, read_graph
from bso_deploy.hardware.network import FixedPointNetwork
from bso_deploy.hardware.spec import SPEC

from bso_deploy.checkpoint import checkpoint_config, load_checkpoint

from ..nir.checkpoint import export_checkpoint_to_nir
from ..nir.metadata import DEFAULT_DT, NIRExportWarning
from .writer import write_netx

FEW_WEIGHT_LEVELS = 32  # below this largest integer weight, layer 0's note suggests a smaller input scale

__all__ = ["NetxExport", "checkpoint_graph", "compile_for_netx", "export_checkpoint_to_netx", "quantization_notes"]


@dataclass(frozen=True)
class NetxExport:
    """What :func:`export_checkpoint_to_netx` wrote: the file, the network in it and notes on rounding."""

    path: Path
    network: FixedPointNetwork
    notes: tuple[str, ...]


def checkpoint_graph(checkpoint_path: str | os.PathLike, dt: float | None = None) -> Any:
    """The NIR graph ``bso-deploy export --format nir`` writes for a checkpoint (read back from a temporary
    file, so that it is exactly that graph); NIR export warnings are returned as notes by the callers."""
    with tempfile.TemporaryDirectory(prefix="bso-deploy-") as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)  # the subtractive reset: checked by the callers
        path = export_checkpoint_to_nir(checkpoint_path, Path(directory) / "model.nir",
                                        dt=DEFAULT_DT if dt is None else dt)
        return read_graph(path)


def checkpoint_reset(checkpoint_path: str | os.PathLike) -> str:
    """The LIF reset mode a checkpoint was trained with ("zero" or "subtract")."""
    return checkpoint_config(load_checkpoint(checkpoint_path)).reset


def compile_for_netx(graph: Any, input_scale: float | None = None, weight_bits: int | None = None,
                     dt: float | None = None, time_steps: int | None = None) -> FixedPointNetwork:
    """``compile_nir`` with what netx needs: profile ``loihi``, per-neuron thresholds folded into the
    weights, integer weights without exponent and biases with exponent 6 (docs/fixed-point.md §10.5)."""
    return compile_nir(graph, profile="loihi", input_scale=input_scale, weight_bits=weight_bits, dt=dt,
                       time_steps=time_steps, fold_thresholds=True, netx_compatible=True)


def quantization_notes(fx_net: FixedPointNetwork) -> tuple[str, ...]:
    """One line per layer on what the compiler rounded or changed (from ``fx_net.quantization``)."""
    notes = []
    for report in fx_net.quantization:
        if report.get("binary"):
            parts = ["binary synapses (1-bit signs, one magnitude per layer)"]
        else:
            limit = f"|W| <= {report['weight_max_int']}" if "weight_max_int" in report else "8 bits"
            parts = [f"weights rounded to {limit} (max abs error {report['weight_max_abs_error']:.3g} in float units)"]
        if report.get("spiking"):
            parts.append(f"threshold max abs error {report['threshold_max_abs_error']:.3g}")
        parts.append(f"bias max abs error {report['bias_max_abs_error']:.3g}")
        fold = report.get("threshold_fold")
        if fold and fold["row_scale_min"] != fold["row_scale_max"]:
            parts.append(f"per-neuron thresholds folded into the weight rows (row scales {fold['row_scale_min']:.3g}"
                         f" ... {fold['row_scale_max']:.3g})")
        if fold and fold["binary_to_full_precision"]:
            parts.append("binary rows of different magnitude (alpha) became 8-bit weights")
        if "bias_timing_note" in report:
            parts.append(report["bias_timing_note"])
        if report is fx_net.quantization[0] and fx_net.input_scale is not None:
            parts.append(f"inputs x in [0, 1] enter as round({fx_net.input_scale:g} x), at most "
                         f"{fx_net.input_max}")
            if report.get("weight_max_int", SPEC.weight_mant_max) < FEW_WEIGHT_LEVELS:
                parts.append("few weight levels are left to layer 0 by the 16-bit activation bound: a smaller "
                             "input scale (--input-scale, e.g. 16 for the digits set's 17 grey levels) leaves more")
        notes.append(f"layer {report['layer']!r}: " + "; ".join(parts))
    return tuple(notes)


def export_checkpoint_to_netx(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                              input_scale: float | None = None, weight_bits: int | None = None,
                              time_steps: int | None = None, dt: float | None = None) -> NetxExport:
    """Compile a checkpoint for netx and write ``out_path`` atomically. A checkpoint trained with the
    subtractive reset (the default) is refused with a ValueError: Lava's LIF resets to zero."""
    if checkpoint_reset(checkpoint_path) != "zero":
        raise ValueError(f"checkpoint {os.fspath(checkpoint_path)} was trained with --reset subtract; netx's "
                         "neuron (Lava's LIF) resets v to zero, so the network would behave differently: train "
                         "with `bso-deploy train --reset zero` to export to netx")
    fx_net = compile_for_netx(checkpoint_graph(checkpoint_path, dt), input_scale=input_scale,
                              weight_bits=weight_bits, time_steps=time_steps)
    path = write_netx(fx_net, out_path)
    return NetxExport(path=path, network=fx_net, notes=quantization_notes(fx_net))
