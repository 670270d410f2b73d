"""``bso-deploy export``: a training checkpoint to a NIR graph, a lava-dl netx file or an ONNX model; one
JSON line on stdout, the exporters' rounding notes on stderr."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from ..export.netx import INPUT_MESSAGE_BITS, export_checkpoint_to_netx
from ..export.nir import NIRExportWarning, export_checkpoint_to_nir
from ..export.onnx import export_checkpoint_to_onnx


def _note(message: object) -> None:
    print(f"bso-deploy export: note: {message}", file=sys.stderr)


def _export_compiled(args: argparse.Namespace) -> dict:
    """--format netx / onnx: the JSON record; rounding notes on stderr."""
    if args.format == "netx":
        result = export_checkpoint_to_netx(args.checkpoint, args.out, input_scale=args.input_scale,
                                           time_steps=args.time_steps, dt=args.dt)
        record = {"format": "netx", "out": str(result.path), "profile": result.network.profile,
                  "load": f"lava.lib.dl.netx.hdf5.Network(net_config=..., input_message_bits={INPUT_MESSAGE_BITS})"}
    else:
        result = export_checkpoint_to_onnx(args.checkpoint, args.out, semantics=args.semantics, profile=args.profile,
                                           input_scale=args.input_scale, time_steps=args.time_steps, dt=args.dt)
        record = {"format": "onnx", "out": str(result.path), "semantics": result.semantics}
        if result.network is not None:
            record["profile"] = result.network.profile
    if result.network is not None:
        record["layers"] = [layer.name for layer in result.network.layers]
        record["latency"] = result.network.latency
        record["input_scale"] = result.network.input_scale
    for note in result.notes:
        _note(note)
    return record


def export_command(args: argparse.Namespace) -> int:
    if args.format != "nir":
        print(json.dumps(_export_compiled(args)))
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NIRExportWarning)
        path = export_checkpoint_to_nir(args.checkpoint, args.out, dt=args.dt)
    for warning in caught:
        _note(warning.message)
    print(json.dumps({"format": args.format, "out": str(path)}))
    return 0
