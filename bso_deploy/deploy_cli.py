"""``bso-deploy run``, ``parity`` and ``compile``: parse the arguments, read the model file (by content,
:mod:`bso_deploy.model_files`), the inputs, labels and calibration data, and call the library
(``hardware.backends``, ``hardware.parity``, ``hardware.compiler``). Warnings go to stderr, one line each,
and into the JSON (``warnings``); errors are one-line ValueErrors that ``cli.main`` turns into exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .model_files import Model, load_model

DEFAULT_DATASET_SAMPLES = 64
DEFAULT_DATASET_TIME_STEPS = 4  # steps each data set sample is repeated for when --time-steps is not given
MODEL_HELP = ("a NIR graph (.nir), a compiled network (.npz, `bso-deploy compile`) or a lava-dl netx file "
              "(.net/.h5), recognised by content")


def load_array(path: str, what: str) -> np.ndarray:
    """A .npy array; FileNotFoundError / ValueError naming the file otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path} does not exist; save an array with numpy.save "
                                "(shape (T, batch, *input_shape) or (batch, *input_shape))")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a readable .npy array: {error}") from error


def is_sequence(x: np.ndarray, input_shape: tuple[int, ...]) -> bool:
    """Whether ``x`` is (T, batch, *input_shape) rather than (batch, *input_shape)."""
    return x.ndim == len(input_shape) + 2


def batch_size(x: np.ndarray, input_shape: tuple[int, ...]) -> int:
    return int(x.shape[1] if is_sequence(x, input_shape) else x.shape[0]) if x.ndim else 0


def first_samples(x: np.ndarray, input_shape: tuple[int, ...], samples: int | None) -> np.ndarray:
    """The first ``samples`` samples: axis 1 of (T, batch, ...) inputs, axis 0 of (batch, ...) ones."""
    if samples is None:
        return x
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    return x[:, :samples] if is_sequence(x, input_shape) else x[:samples]


def load_labels(path: str, count: int) -> np.ndarray:
    """Integer labels (count,) from a .npy file; ValueError naming the file otherwise."""
    labels = load_array(path, "labels")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels {path} have dtype {labels.dtype}; save integer class indices "
                         f"(numpy.save(path, labels.astype(numpy.int64)))")
    if labels.shape != (count,):
        raise ValueError(f"labels {path} have shape {labels.shape} for {count} input samples; give one integer "
                         f"label per sample, shape ({count},)")
    return labels.astype(np.int64)


def add_compile_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``compile_nir`` (docs/fixed-point.md §10), for a NIR graph compiled by the command
    (``compile_for_inputs`` checks --scaling against ``hardware.backends.SCALINGS``)."""
    parser.add_argument("--input-scale", type=float, default=None,
                        help="inputs x enter as round(scale x) (default 255 for x in [0, 1]; with calibration "
                             "data 1 for integer data such as event counts, else 255 / their largest value)")
    parser.add_argument("--input-range", type=float, default=None,
                        help="largest float input (default 1, or the calibration data's): sets the largest "
                             "integer input round(scale range) <= 255 (e.g. event counts)")
    parser.add_argument("--weight-bits", type=int, default=None, help="bits of the integer weights (default 8)")
    parser.add_argument("--scaling", default=None,
                        help="worst-case: per-layer scales from the worst case; calibrated: from the activity "
                             "on --calibrate-on data (default: calibrated when --calibrate-on is given, else "
                             "worst-case)")
    parser.add_argument("--calibrate-on", default=None,
                        help="calibration data: 'digits' (its training samples) or a .npy of (T, batch, *input_shape) "
                             "or (batch, *input_shape) (repeated --time-steps times)")
    parser.add_argument("--no-bias-correction", action="store_true",
                        help="with calibration data, do not add the mean current the weight rounding takes away "
                             "to each neuron's bias (docs/fixed-point.md §10.6)")
    parser.add_argument("--calibration-samples", type=int, default=None,
                        help=f"samples of the calibration data (default: {DEFAULT_DATASET_SAMPLES} for digits, "
                             "all of a file)")


def compile_options_given(args: argparse.Namespace) -> list[str]:
    names = ("input_scale", "input_range", "weight_bits", "scaling", "calibrate_on", "calibration_samples")
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name, None) is not None]


def calibration_inputs(args: argparse.Namespace, input_shape: tuple[int, ...],
                       time_steps: int | None) -> np.ndarray | None:
    """Float calibration inputs (T, batch, *input_shape) from ``--calibrate-on``, or None. (batch, ...)
    data are repeated ``time_steps`` times."""
    from .hardware.backends import prepare_inputs

    source, samples = args.calibrate_on, args.calibration_samples
    if source is None:
        if samples is not None:
            raise ValueError("--calibration-samples needs --calibrate-on digits|X.npy")
        return None
    if samples is not None and samples < 1:
        raise ValueError(f"--calibration-samples must be >= 1, got {samples}")
    if source == "digits":
        from .hardware.parity import dataset_samples

        x, _ = dataset_samples("digits", samples or DEFAULT_DATASET_SAMPLES, split="train")  # not the test data
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise ValueError(f"--calibrate-on digits gives samples of shape {tuple(x.shape[1:])}, but the graph's "
                             f"input is {tuple(input_shape)}; give a .npy of the graph's inputs instead")
        return prepare_inputs(x, input_shape, time_steps or DEFAULT_DATASET_TIME_STEPS)
    x = load_array(source, "calibration")
    try:
        x = first_samples(x, input_shape, samples)
        return prepare_inputs(x, input_shape, None if is_sequence(x, input_shape) else time_steps or
                              DEFAULT_DATASET_TIME_STEPS)
    except ValueError as error:
        raise ValueError(f"calibration data {source}: {error}; save finite values of shape (T, batch, "
                         f"*{tuple(input_shape)}) or (batch, *{tuple(input_shape)})") from error


def _effective_scaling(args: argparse.Namespace, calibration: np.ndarray | None) -> str:
    if args.scaling == "calibrated" and calibration is None:
        raise ValueError("--scaling calibrated needs calibration data: add --calibrate-on digits|X.npy")
    return args.scaling or ("calibrated" if calibration is not None else "worst-case")


def _compile(args: argparse.Namespace, model: Model, time_steps: int | None, calibration: np.ndarray | None):
    from .hardware.backends import compile_for_inputs

    return compile_for_inputs(model.graph, time_steps, profile=args.profile or "bso", dt=args.dt,
                              input_scale=args.input_scale, weight_bits=args.weight_bits, scaling=args.scaling,
                              calibration=calibration, input_range=args.input_range,
                              bias_correction=not args.no_bias_correction)


def _described(model: Model) -> str:
    return f"{model.path} is a " + ("lava-dl netx network" if model.kind == "netx" else "compiled network")


def _network_model(args: argparse.Namespace, model: Model) -> None:
    """Options that a compiled (or netx) network cannot take: one-line errors."""
    given = compile_options_given(args) + (["--dt"] if args.dt is not None else [])
    if given:
        raise ValueError(f"{_described(model)}; {', '.join(given)} apply to NIR graphs only")
    if args.profile not in (None, model.network.profile):
        raise ValueError(f"{model.path} is compiled for profile {model.network.profile!r}, not {args.profile!r}; "
                         "drop --profile or compile the graph for it")


def warn(command: str, messages: list[str]) -> None:
    for message in messages:
        print(f"bso-deploy {command}: warning: {message}", file=sys.stderr)


def add_run_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a model on a float or fixed-point backend")
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--backend", required=True,
                        help="float (NIR graphs only), sim, torch or lava (Lava's runtime: our processes in profile "
                             "bso, Lava's Dense + LIF in profile loihi)")
    parser.add_argument("--profile", default=None, help="fixed-point profile for a NIR graph: bso (default) or loihi")
    parser.add_argument("--dt", type=float, default=None, help="time step (default: from the graph's metadata)")
    parser.add_argument("--inputs", required=True,
                        help=".npy of shape (T, batch, *input_shape) or (batch, *input_shape)")
    parser.add_argument("--time-steps", type=int, default=None, help="repeat (batch, *input_shape) inputs T times")
    parser.add_argument("--labels", default=None, help=".npy of integer labels (batch,): adds the accuracy")
    parser.add_argument("--record", choices=["all"], default=None, help="also store every layer's spikes")
    parser.add_argument("--out", required=True, help="output .npz (output, latency, predictions, spikes/<layer>)")
    add_compile_options(parser)
    parser.set_defaults(handler=run_command)


def _input_shape(model: Model, float_backend: bool, dt: float | None) -> tuple[int, ...]:
    if model.network is not None:
        return tuple(model.network.input_shape)
    if float_backend:
        from .export.nir import from_nir

        return tuple(from_nir(model.graph, dt=dt).input_shape)
    from .hardware.compiler import graph_input_shape

    return graph_input_shape(model.graph)


def run_command(args: argparse.Namespace) -> int:
    from .hardware.backends import (
        get_backend,
        input_clip_warning,
        prepare_inputs,
        run_fixed,
        run_float,
        save_run,
        silent_layer_warnings,
    )

    float_backend = get_backend(args.backend).kind == "float"
    model = load_model(args.model)
    if model.network is not None:
        if float_backend:
            raise ValueError(f"{_described(model)}: the float backend needs the NIR graph; use --backend sim, "
                             "torch or lava")
        _network_model(args, model)
    shape = _input_shape(model, float_backend, args.dt)
    x = prepare_inputs(load_array(args.inputs, "inputs"), shape, args.time_steps)
    labels = None if args.labels is None else load_labels(args.labels, int(x.shape[1]))
    messages: list[str] = []
    fx_net = None
    if float_backend:
        if compile_options_given(args):
            raise ValueError(f"{', '.join(compile_options_given(args))} apply to fixed-point backends only")
        result = run_float(model.graph, args.backend, x, dt=args.dt, record=args.record == "all")
    else:
        fx_net = model.network
        if fx_net is None:
            calibration = calibration_inputs(args, shape, int(x.shape[0]))
            _effective_scaling(args, calibration)
            fx_net = _compile(args, model, int(x.shape[0]), calibration)
        result = run_fixed(fx_net, args.backend, x, record=args.record == "all")
        clip = input_clip_warning(fx_net, x, result.input_clipped)
        messages += [clip] if clip else []
    messages = silent_layer_warnings(result, fx_net) + messages
    path = save_run(result, args.out)
    record: dict[str, Any] = {
        "backend": args.backend, "model_kind": model.kind, "out": str(path), "steps": int(result.output.shape[0]),
        "latency": int(result.latency), "spike_counts": result.spike_counts, "input_clipped": result.input_clipped,
        "saturation": {name: counts.totals() for name, counts in result.saturation.items()}, "warnings": messages}
    if labels is not None:
        record["accuracy"] = float(np.mean(result.predictions == labels))
    warn("run", messages)
    print(json.dumps(record))
    return 0


def add_parity_parser(subparsers) -> None:
    parser = subparsers.add_parser("parity", help="compare backends spike for spike, and float against fixed")
    parser.add_argument("model", help=MODEL_HELP + "; compiled and netx networks have no float model")
    parser.add_argument("--backends", default="sim,torch",
                        help="comma-separated fixed-point backends: sim, torch, lava (e.g. sim,torch,lava)")
    parser.add_argument("--profile", default=None, help="for a NIR graph: bso (default) or loihi")
    parser.add_argument("--samples", type=int, default=None,
                        help=f"samples to use: of the data set (default {DEFAULT_DATASET_SAMPLES}) or of --inputs "
                             "(default all; the batch axis, axis 1 of (T, batch, ...) inputs)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=None, help="use the first SAMPLES test samples of this data set")
    source.add_argument("--inputs", default=None, help=".npy inputs, (T, batch, *input_shape) or (batch, ...)")
    parser.add_argument("--labels", default=None, help="with --inputs: .npy of integer labels (batch,)")
    parser.add_argument("--time-steps", type=int, default=None,
                        help=f"steps per sample for (batch, ...) inputs (data sets: default "
                             f"{DEFAULT_DATASET_TIME_STEPS}); not needed for (T, batch, ...) inputs")
    parser.add_argument("--dt", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_compile_options(parser)
    parser.set_defaults(handler=parity_command)


def _parity_inputs(args: argparse.Namespace,
                   shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(inputs, labels or None, time_steps) of ``parity``."""
    if args.inputs is None:
        if args.labels is not None:
            raise ValueError("--labels goes with --inputs; a data set brings its own labels")
        from .hardware.parity import dataset_samples

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
    from .hardware.parity import check_parity

    model = load_model(args.model)
    backends = tuple(b for b in args.backends.split(",") if b)
    if model.network is not None:
        _network_model(args, model)
        shape = tuple(model.network.input_shape)
        inputs, labels, time_steps = _parity_inputs(args, shape)
        report = check_parity(model.network, backends=backends, inputs=inputs, labels=labels,
                              time_steps=time_steps).to_dict()
        print(f"bso-deploy parity: note: {_described(model)}: no float model, fixed backends compared only",
              file=sys.stderr)
    else:
        from .hardware.backends import prepare_inputs
        from .hardware.compiler import graph_input_shape

        shape = graph_input_shape(model.graph)
        inputs, labels, time_steps = _parity_inputs(args, shape)
        steps = int(prepare_inputs(inputs, shape, time_steps).shape[0])
        calibration = calibration_inputs(args, shape, steps)
        _effective_scaling(args, calibration)
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


def add_compile_parser(subparsers) -> None:
    parser = subparsers.add_parser("compile", help="compile a NIR graph to a fixed-point network (.npz + .json)",
                                   description="Writes the FixedPointNetwork (NET.npz, input scale inside) and a "
                                               "quantization report beside it (NET.json).")
    parser.add_argument("model", help="a NIR graph (.nir), a training checkpoint (checkpoint.pt) or a lava-dl "
                                      "netx file (converted as it is), recognised by content")
    parser.add_argument("--profile", default=None, help="bso (default) or loihi")
    parser.add_argument("--out", required=True, help="the network's .npz; the report goes to the same name .json")
    parser.add_argument("--time-steps", type=int, default=None,
                        help="steps per sample the network must run without saturating (default: the "
                             "calibration data's, else the graph's metadata, else the compiler's 32)")
    parser.add_argument("--dt", type=float, default=None, help="time step (default: from the graph's metadata)")
    add_compile_options(parser)
    parser.set_defaults(handler=compile_command)


def _compile_time_steps(args: argparse.Namespace, model: Model, shape: tuple[int, ...]) -> int:
    from .hardware.compiler import DEFAULT_TIME_STEPS

    if args.time_steps is not None:
        return int(args.time_steps)
    if args.calibrate_on not in (None, "digits"):
        x = load_array(args.calibrate_on, "calibration")
        if is_sequence(x, shape):
            return int(x.shape[0])
    recorded = (model.graph.metadata or {}).get("time_steps")
    return DEFAULT_TIME_STEPS if recorded is None else int(np.asarray(recorded).reshape(-1)[0])


def _calibration_check(model: Model, fx_net, calibration: np.ndarray, dt: float | None) -> dict[str, Any]:
    """Saturation, clipped inputs and float-vs-fixed spike statistics of ``fx_net`` on the calibration data."""
    from .hardware.backends import run_fixed, run_float
    from .hardware.parity import spike_match

    fixed = run_fixed(fx_net, "sim", calibration, record=True)
    matches = spike_match(fx_net, run_float(model.graph, "float", calibration, dt=dt, record=True), fixed)
    return {"samples": int(calibration.shape[1]), "time_steps": int(calibration.shape[0]),
            "input_clipped": fixed.input_clipped,
            "saturation": {name: counts.totals() for name, counts in fixed.saturation.items()},
            "spike_ratio": {name: match.ratio for name, match in matches.items()},
            "spike_precision": {name: match.precision for name, match in matches.items()},
            "spike_recall": {name: match.recall for name, match in matches.items()}}


def compile_command(args: argparse.Namespace) -> int:
    from .io import atomic_write_json

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
        _network_model(args, model)
        fx_net = model.network
        report.update(scaling=None, time_steps=None)
    else:
        from .hardware.compiler import graph_input_shape

        shape = graph_input_shape(model.graph)
        time_steps = _compile_time_steps(args, model, shape)
        calibration = calibration_inputs(args, shape, time_steps)
        scaling = _effective_scaling(args, calibration)
        fx_net = _compile(args, model, time_steps, calibration)
        report.update(scaling=scaling, time_steps=time_steps, calibration=None if calibration is None else {
            "source": args.calibrate_on, **_calibration_check(model, fx_net, calibration, args.dt)})
    path = fx_net.save(out)
    report.update(profile=fx_net.profile, input_scale=fx_net.input_scale, input_max=fx_net.input_max,
                  input_shape=list(fx_net.input_shape), latency=fx_net.latency,
                  layers=[layer.name for layer in fx_net.layers], quantization=[dict(q) for q in fx_net.quantization])
    report_path = atomic_write_json(out.with_suffix(".json"), report)
    summary = {key: report[key] for key in ("profile", "scaling", "input_scale", "input_max", "time_steps", "latency")}
    print(json.dumps({"out": str(path), "report": str(report_path), **summary}))
    return 0
