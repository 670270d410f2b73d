"""What ``bso-deploy run``, ``parity`` and ``compile`` share (``bso_deploy.commands.run``, ``.parity``,
``.compile``): reading the inputs, labels and calibration data, compiling a model file's NIR graph, checking
the options a compiled network cannot take, printing warnings. Warnings go to stderr, one line each, and
into the JSON (``warnings``); errors are one-line ValueErrors that ``cli.main`` turns into exit code 2.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .hardware.backends import compile_for_inputs, prepare_inputs
from .hardware.input_checks import check_input_values, check_labels
from .hardware.network import FixedPointNetwork
from .input_files import read_array
from .model_files import Model
from .options import CALIBRATION_DATASET, DEFAULT_DATASET_SAMPLES, DEFAULT_DATASET_TIME_STEPS
from .parity_data import dataset_samples


def load_array(path: str, what: str) -> np.ndarray:
    """A .npy (or one-array .npz) array, its header checked before reading (``input_files.read_array``)."""
    return read_array(path, what)


def is_sequence(x: np.ndarray, input_shape: tuple[int, ...]) -> bool:
    """Whether ``x`` is (T, batch, *input_shape) rather than (batch, *input_shape)."""
    return x.ndim == len(input_shape) + 2


def batch_size(x: np.ndarray, input_shape: tuple[int, ...]) -> int:
    """Samples in ``x``: axis 1 of (T, batch, ...) inputs, axis 0 of (batch, ...) ones."""
    return int(x.shape[1] if is_sequence(x, input_shape) else x.shape[0]) if x.ndim else 0


def first_samples(x: np.ndarray, input_shape: tuple[int, ...], samples: int | None) -> np.ndarray:
    """The first ``samples`` samples: axis 1 of (T, batch, ...) inputs, axis 0 of (batch, ...) ones."""
    if samples is None:
        return x
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    return x[:, :samples] if is_sequence(x, input_shape) else x[:samples]


def load_labels(path: str, count: int, classes: int | None = None) -> np.ndarray:
    """Integer labels (count,) in [0, classes) from a .npy file; one-line errors naming the file otherwise."""
    return check_labels(load_array(path, "labels"), path, count, classes)


def compile_options_given(args: argparse.Namespace) -> list[str]:
    """The compile options given on the command line, as flags (``--input-scale``, ...)."""
    names = ("input_scale", "input_range", "weight_bits", "scaling", "calibrate_on", "calibration_samples")
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name, None) is not None]


def calibration_inputs(args: argparse.Namespace, input_shape: tuple[int, ...],
                       time_steps: int | None) -> np.ndarray | None:
    """Float calibration inputs (T, batch, *input_shape) from ``--calibrate-on``, or None. (batch, ...)
    data are repeated ``time_steps`` times."""
    source, samples = args.calibrate_on, args.calibration_samples
    if source is None:
        if samples is not None:
            raise ValueError("--calibration-samples needs --calibrate-on digits|X.npy")
        return None
    if samples is not None and samples < 1:
        raise ValueError(f"--calibration-samples must be >= 1, got {samples}")
    if source == CALIBRATION_DATASET:
        x, _ = dataset_samples(source, samples or DEFAULT_DATASET_SAMPLES, split="train")  # not the test data
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise ValueError(f"--calibrate-on {source} gives samples of shape {tuple(x.shape[1:])}, but the graph's "
                             f"input is {tuple(input_shape)}; give a .npy of the graph's inputs instead")
        return prepare_inputs(x, input_shape, time_steps or DEFAULT_DATASET_TIME_STEPS)
    x = check_input_values(load_array(source, "calibration"), f"calibration data {source}: inputs", args.input_range,
                           exact=False)
    try:
        x = first_samples(x, input_shape, samples)
        return prepare_inputs(x, input_shape, None if is_sequence(x, input_shape) else time_steps or
                              DEFAULT_DATASET_TIME_STEPS)
    except ValueError as error:
        raise ValueError(f"calibration data {source}: {error}; save finite values of shape (T, batch, "
                         f"*{tuple(input_shape)}) or (batch, *{tuple(input_shape)})") from error


def effective_scaling(args: argparse.Namespace, calibration: np.ndarray | None) -> str:
    """--scaling, or its default: calibrated with calibration data, else worst-case."""
    if args.scaling == "calibrated" and calibration is None:
        raise ValueError("--scaling calibrated needs calibration data: add --calibrate-on digits|X.npy")
    return args.scaling or ("calibrated" if calibration is not None else "worst-case")


def compile_model(args: argparse.Namespace, model: Model, time_steps: int | None,
                  calibration: np.ndarray | None) -> FixedPointNetwork:
    """``model``'s NIR graph compiled with the command's compile options (``add_compile_options``)."""
    return compile_for_inputs(model.graph, time_steps, profile=args.profile or "bso", dt=args.dt,
                              input_scale=args.input_scale, weight_bits=args.weight_bits, scaling=args.scaling,
                              calibration=calibration, input_range=args.input_range,
                              bias_correction=not args.no_bias_correction)


def described(model: Model) -> str:
    """``PATH is a compiled network`` (or ``lava-dl netx network``), for error messages."""
    return f"{model.path} is a " + ("lava-dl netx network" if model.kind == "netx" else "compiled network")


def check_network_model(args: argparse.Namespace, model: Model) -> None:
    """Options that a compiled (or netx) network cannot take: one-line errors."""
    given = compile_options_given(args) + (["--dt"] if args.dt is not None else [])
    if given:
        raise ValueError(f"{described(model)}; {', '.join(given)} apply to NIR graphs only")
    if args.profile not in (None, model.network.profile):
        raise ValueError(f"{model.path} is compiled for profile {model.network.profile!r}, not {args.profile!r}; "
                         "drop --profile or compile the graph for it")


def warn(command: str, messages: list[str]) -> None:
    """Each message on stderr as ``bso-deploy COMMAND: warning: MESSAGE``."""
    for message in messages:
        print(f"bso-deploy {command}: warning: {message}", file=sys.stderr)
