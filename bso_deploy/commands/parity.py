"""``bso-deploy parity``: the same inputs on several fixed-point backends, compared spike for spike, and a
NIR graph's float model against them (``hardware.parity.check_parity``); a summary or one JSON object; exit
code 1 on any mismatch."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from ..deploy_cli import (
    batch_size,
    calibration_inputs,
    check_network_model,
    described,
    effective_scaling,
    first_samples,
    load_array,
    load_labels,
    warn,
)
from ..hardware.backends import prepare_inputs
from ..hardware.compiler import graph_input_shape
from ..hardware.parity import check_parity
from ..model_files import load_model
from ..options import DEFAULT_DATASET_SAMPLES, DEFAULT_DATASET_TIME_STEPS
from ..parity_data import dataset_samples


def _parity_inputs(args: argparse.Namespace,
                   shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(inputs, labels or None, time_steps) of ``parity``."""
    if args.inputs is None:
        if args.labels is not None:
            raise ValueError("--labels goes with --inputs; a data set brings its own labels")
        inputs, labels = dataset_samples(args.dataset or "digits", args.samples or DEFAULT_DATASET_SAMPLES)
        return inputs, labels, args.time_steps or DEFAULT_DATASET_TIME_STEPS
    inputs = load_array(args.inputs, "inputs")
    labels = None
    if args.labels is not None:
        labels = first_samples(load_labels(args.labels, batch_size(inputs, shape)), (), args.samples)
    return first_samples(inputs, shape, args.samples), labels, args.time_steps


def _print_parity(report: dict[str, Any], backends: tuple[str, ...]) -> None:
    print(f"parity {' vs '.join(backends)} ({report['profile']} profile, {report['samples']} samples): "
          f"{report['mismatches']} mismatches in {report['compared_spikes']} spikes and "
          f"{report['compared_states']} states")
    if report["first_divergence"]:
        print(f"first divergence: {json.dumps(report['first_divergence'])}")
    if report["saturation_divergence"]:
        print(f"saturation counts differ: {json.dumps(report['saturation_divergence'])}")
    if report.get("fixed_accuracy") is not None:
        line = f"accuracy: fixed {report['fixed_accuracy']:.4f}"
        if report["float_accuracy"] is not None:
            line += f", float {report['float_accuracy']:.4f}; prediction agreement {report['prediction_agreement']:.4f}"
        print(line)
        print("accuracy per backend: " + ", ".join(
            f"{name} {accuracy:.4f} ({report['backend_seconds'][name]:.2f} s)"
            for name, accuracy in report["backend_accuracy"].items()))

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    for name, agreement in report["float_fixed_agreement"].items():
        print(f"float vs fixed, layer {name}: spikes {report['float_spikes'][name]} float, "
              f"{report['fixed_spikes'][name]} fixed (ratio {number(report['spike_ratio'][name])}), precision "
              f"{number(report['spike_precision'][name])}, recall {number(report['spike_recall'][name])}, "
              f"agreement {agreement:.4f}")
    for name, totals in report["saturation"].items():
        if any(totals.values()):
            print(f"saturation, layer {name} ({report['saturation_backends'][0]}): " + ", ".join(
                f"{event} {totals[event + '_steps']} neuron-steps in {totals[event + '_neurons']} neurons"
                for event in ("v", "u", "a") if totals[event + "_steps"]))


def parity_command(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    backends = tuple(b for b in args.backends.split(",") if b)
    if model.network is not None:
        check_network_model(args, model)
        shape = tuple(model.network.input_shape)
        inputs, labels, time_steps = _parity_inputs(args, shape)
        report = check_parity(model.network, backends=backends, inputs=inputs, labels=labels,
                              time_steps=time_steps).to_dict()
        print(f"bso-deploy parity: note: {described(model)}: no float model, fixed backends compared only",
              file=sys.stderr)
    else:
        shape = graph_input_shape(model.graph)
        inputs, labels, time_steps = _parity_inputs(args, shape)
        steps = int(prepare_inputs(inputs, shape, time_steps).shape[0])
        calibration = calibration_inputs(args, shape, steps)
        effective_scaling(args, calibration)
        report = check_parity(model.graph, backends=backends, inputs=inputs, labels=labels, profile=args.profile,
                              dt=args.dt, time_steps=time_steps, input_scale=args.input_scale,
                              weight_bits=args.weight_bits, scaling=args.scaling, calibration=calibration,
                              input_range=args.input_range, bias_correction=not args.no_bias_correction).to_dict()
    report["model_kind"] = model.kind
    warn("parity", report["warnings"])
    if args.json:
        print(json.dumps(report))
    else:
        _print_parity(report, backends)
    return 0 if report["mismatches"] == 0 else 1
