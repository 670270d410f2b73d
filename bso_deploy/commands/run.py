"""``bso-deploy run``: a model file on one backend (``hardware.backends``): float, or fixed point with a NIR
graph compiled on the fly; the outputs in an .npz, one JSON line on stdout, warnings on stderr."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from ..deploy_cli import (
    calibration_inputs,
    check_network_model,
    compile_model,
    compile_options_given,
    described,
    effective_scaling,
    load_array,
    load_labels,
    warn,
)
from ..export.nir import from_nir
from ..hardware.backends import (
    get_backend,
    input_clip_warning,
    prepare_inputs,
    run_fixed,
    run_float,
    save_run,
    silent_layer_warnings,
)
from ..hardware.compiler import graph_input_shape
from ..hardware.input_checks import DEFAULT_INPUT_RANGE, check_input_values, check_labels, network_input_range
from ..model_files import Model, load_model


def _input_shape(model: Model, float_backend: bool, dt: float | None) -> tuple[int, ...]:
    if model.network is not None:
        return tuple(model.network.input_shape)
    if float_backend:
        return tuple(from_nir(model.graph, dt=dt).input_shape)
    return graph_input_shape(model.graph)


def run_command(args: argparse.Namespace) -> int:
    float_backend = get_backend(args.backend).kind == "float"
    model = load_model(args.model)
    if model.network is not None:
        if float_backend:
            raise ValueError(f"{described(model)}: the float backend needs the NIR graph; use --backend sim, "
                             "torch or lava")
        check_network_model(args, model)
    shape = _input_shape(model, float_backend, args.dt)
    given = load_array(args.inputs, "inputs")
    what = f"inputs {args.inputs}"
    x = prepare_inputs(given, shape, args.time_steps)
    labels = None if args.labels is None else load_labels(args.labels, int(x.shape[1]))
    messages: list[str] = []
    fx_net = None
    if float_backend:
        fixed_only = [flag for flag in compile_options_given(args) if flag != "--input-range"]
        if fixed_only:
            raise ValueError(f"{', '.join(fixed_only)} apply to fixed-point backends only")
        check_input_values(given, what, args.input_range or DEFAULT_INPUT_RANGE, exact=True)
        result = run_float(model.graph, args.backend, x, dt=args.dt, record=args.record == "all")
    else:
        fx_net = model.network
        if fx_net is None:
            calibration = calibration_inputs(args, shape, int(x.shape[0]))
            effective_scaling(args, calibration)
            fx_net = compile_model(args, model, int(x.shape[0]), calibration)
        check_input_values(given, what, network_input_range(fx_net), exact=False)
        result = run_fixed(fx_net, args.backend, x, record=args.record == "all")
        clip = input_clip_warning(fx_net, x, result.input_clipped)
        messages += [clip] if clip else []
    if labels is not None:  # the class count is the output's size
        check_labels(labels, args.labels, len(labels), math.prod(result.output.shape[2:]))
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
