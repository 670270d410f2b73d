"""``bso-deploy compile``: a NIR graph (or a training checkpoint, exported to NIR first) to a
FixedPointNetwork (NET.npz) and its quantization report (NET.json); a lava-dl netx file is converted as it
is. One JSON line on stdout, the exporter's notes on stderr."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..deploy_cli import (
    calibration_inputs,
    check_network_model,
    compile_model,
    effective_scaling,
    is_sequence,
    load_array,
)
from ..hardware.backends import run_fixed, run_float
from ..hardware.compiler import DEFAULT_TIME_STEPS, graph_input_shape
from ..hardware.network import FixedPointNetwork
from ..hardware.parity import spike_match
from ..io import atomic_write_json
from ..model_files import Model, load_model
from ..options import CALIBRATION_DATASET
from ..parity_data import event_input_options, is_event_dataset, recorded_training


def _compile_time_steps(args: argparse.Namespace, model: Model, shape: tuple[int, ...]) -> int:
    if args.time_steps is not None:
        return int(args.time_steps)
    if args.calibrate_on not in (None, CALIBRATION_DATASET):
        x = load_array(args.calibrate_on, "calibration")
        if is_sequence(x, shape):
            return int(x.shape[0])
    recorded = (model.graph.metadata or {}).get("time_steps")
    return DEFAULT_TIME_STEPS if recorded is None else int(np.asarray(recorded).reshape(-1)[0])


def _event_data(args: argparse.Namespace, model: Model,
                time_steps: int) -> tuple[dict[str, Any] | None, argparse.Namespace]:
    """For a graph that runs on an event data set (--dataset, else the one its metadata records): what keeps its
    counts exact (``parity_data.event_input_options``: input scale 1, input range the training split's largest
    count at ``time_steps`` frames, each unless given) and ``args`` with them; else (None, args)."""
    recorded, _ = recorded_training(model.graph)
    name = args.dataset or recorded
    if not is_event_dataset(name):
        return None, args
    try:
        input_scale, input_range, largest = event_input_options(name, time_steps, args.data_root, args.input_scale,
                                                                args.input_range)
    except FileNotFoundError as error:
        raise type(error)(f"{error}; compile reads the training split for its largest event count (the input "
                          "range): give --data-root, or --input-range N to set it") from None
    event = {"dataset": name, "time_steps": time_steps, "largest_training_count": largest,
             "input_scale": input_scale, "input_range": input_range}
    return event, argparse.Namespace(**{**vars(args), "input_scale": input_scale, "input_range": input_range})


def _calibration_check(model: Model, fx_net: FixedPointNetwork, calibration: np.ndarray,
                       dt: float | None) -> dict[str, Any]:
    """Saturation, clipped inputs and float-vs-fixed spike statistics of ``fx_net`` on the calibration data."""
    fixed = run_fixed(fx_net, "sim", calibration, record=True)
    matches = spike_match(fx_net, run_float(model.graph, "float", calibration, dt=dt, record=True), fixed)
    return {"samples": int(calibration.shape[1]), "time_steps": int(calibration.shape[0]),
            "input_clipped": fixed.input_clipped,
            "saturation": {name: counts.totals() for name, counts in fixed.saturation.items()},
            "spike_ratio": {name: match.ratio for name, match in matches.items()},
            "spike_precision": {name: match.precision for name, match in matches.items()},
            "spike_recall": {name: match.recall for name, match in matches.items()}}


def compile_command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out} must end in .npz (the report is written beside it as {out.stem}.json)")
    with warnings.catch_warnings(record=True) as caught:  # the NIR export of a checkpoint notes what it rounds
        warnings.simplefilter("always")
        model = load_model(args.model, checkpoints=True, dt=args.dt)
    for warning in caught:
        print(f"bso-deploy compile: note: {warning.message}", file=sys.stderr)
    report: dict[str, Any] = {"source": str(model.path), "source_kind": model.kind}
    if model.network is not None:
        if model.kind == "compiled":
            raise ValueError(f"{model.path} is already a compiled network; give the NIR graph to compile it again")
        check_network_model(args, model)
        fx_net = model.network
        report.update(scaling=None, time_steps=None)
    else:
        shape = graph_input_shape(model.graph)
        time_steps = _compile_time_steps(args, model, shape)
        calibration = calibration_inputs(args, shape, time_steps)
        scaling = effective_scaling(args, calibration)
        event_data, args = _event_data(args, model, time_steps)
        fx_net = compile_model(args, model, time_steps, calibration)
        report.update(scaling=scaling, time_steps=time_steps, calibration=None if calibration is None else {
            "source": args.calibrate_on, **_calibration_check(model, fx_net, calibration, args.dt)})
        report["event_data"] = event_data
    path = fx_net.save(out)
    report.update(profile=fx_net.profile, input_scale=fx_net.input_scale, input_max=fx_net.input_max,
                  input_shape=list(fx_net.input_shape), latency=fx_net.latency,
                  layers=[layer.name for layer in fx_net.layers], quantization=[dict(q) for q in fx_net.quantization])
    report_path = atomic_write_json(out.with_suffix(".json"), report)
    summary = {key: report[key] for key in ("profile", "scaling", "input_scale", "input_max", "time_steps", "latency")}
    print(json.dumps({"out": str(path), "report": str(report_path), **summary}))
    return 0
