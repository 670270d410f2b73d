"""``bso-deploy parity``: the same inputs on several fixed-point backends, compared spike for spike, and a
NIR graph's float model against them (``hardware.parity.check_parity``); a summary or one JSON object; exit
code 1 on any mismatch."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import nir
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
from ..options import DATASET_NAMES, DEFAULT_DATASET_SAMPLES, DEFAULT_DATASET_TIME_STEPS
from ..parity_data import dataset_samples, event_input_options, is_event_dataset, recorded_training


def _dataset_time_steps(args: argparse.Namespace, name: str, recorded: int | None) -> int | None:
    """Steps per sample of data set ``name``: --time-steps, else the training run's (graph metadata), else, for
    the static sets only, DEFAULT_DATASET_TIME_STEPS; event frames cannot be binned without it."""
    steps = args.time_steps or recorded
    if steps is None and is_event_dataset(name):
        raise ValueError(f"--dataset {name} bins each recording into one frame per time step: give --time-steps T "
                         "(the T the network was trained with; a NIR graph exported by bso-deploy records it)")
    return steps or DEFAULT_DATASET_TIME_STEPS


def _parity_inputs(args: argparse.Namespace, shape: tuple[int, ...],
                   graph: nir.NIRGraph | None = None) -> tuple[np.ndarray, np.ndarray | None, int | None, str | None]:
    """(inputs, labels or None, time_steps (None for (T, batch, ...) inputs), data set name or None) of
    ``parity``. The data set: --dataset, else the one the graph was trained on (its metadata), else digits."""
    if args.inputs is None:
        if args.labels is not None:
            raise ValueError("--labels goes with --inputs; a data set brings its own labels")
        recorded_name, recorded_steps = recorded_training(graph)
        name = args.dataset or (recorded_name if recorded_name in DATASET_NAMES else "digits")
        time_steps = _dataset_time_steps(args, name, recorded_steps)
        inputs, labels = dataset_samples(name, args.samples or DEFAULT_DATASET_SAMPLES, root=args.data_root,
                                         time_steps=time_steps)
        return inputs, labels, None if is_event_dataset(name) else time_steps, name
    inputs = load_array(args.inputs, "inputs")
    labels = None
    if args.labels is not None:
        labels = first_samples(load_labels(args.labels, batch_size(inputs, shape)), (), args.samples)
    return first_samples(inputs, shape, args.samples), labels, args.time_steps, None


def _print_parity(report: dict[str, Any], backends: tuple[str, ...]) -> None:
    print(f"parity {' vs '.join(backends)} ({report['profile']} profile, {report['samples']} samples): "
          f"{report['mismatches']} mismatches in {report['compared_spikes']} spikes and "
          f"{report['compared_states']} states")
    if report["first_divergence"]:
        print(f"first divergence: {json.dumps(report['first_divergence'])}")
    if report["saturation_divergence"]:
        print(f"saturation counts differ: {json.dumps(report['saturation_divergence'])}")
    event = report.get("event_data")
    if event:
        largest = event["largest_training_count"]
        print(f"event counts ({event['dataset']}, {event['time_steps']} frames): input scale {event['input_scale']:g}, "
              f"input range {event['input_range']:g}" + ("" if largest is None else " (the training split's largest "
              "count)") + f"; {report['input_clipped']} input values clipped")
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
        inputs, labels, time_steps, _ = _parity_inputs(args, shape)
        report = check_parity(model.network, backends=backends, inputs=inputs, labels=labels,
                              time_steps=time_steps).to_dict()
        print(f"bso-deploy parity: note: {described(model)}: no float model, fixed backends compared only",
              file=sys.stderr)
    else:
        shape = graph_input_shape(model.graph)
        inputs, labels, time_steps, name = _parity_inputs(args, shape, model.graph)
        steps = int(prepare_inputs(inputs, shape, time_steps).shape[0])
        calibration = calibration_inputs(args, shape, steps)
        effective_scaling(args, calibration)
        input_scale, input_range, largest = event_input_options(name, steps, args.data_root, args.input_scale,
                                                                args.input_range)
        report = check_parity(model.graph, backends=backends, inputs=inputs, labels=labels, profile=args.profile,
                              dt=args.dt, time_steps=time_steps, input_scale=input_scale,
                              weight_bits=args.weight_bits, scaling=args.scaling, calibration=calibration,
                              input_range=input_range, bias_correction=not args.no_bias_correction).to_dict()
        if is_event_dataset(name):
            report["event_data"] = {"dataset": name, "time_steps": steps, "largest_training_count": largest,
                                    "input_scale": input_scale, "input_range": input_range}
    report["model_kind"] = model.kind
    warn("parity", report["warnings"])
    if args.json:
        print(json.dumps(report))
    else:
        _print_parity(report, backends)
    return 0 if report["mismatches"] == 0 else 1
