"""The options of ``bso-deploy run``, ``parity`` and ``compile`` (argparse only, no torch: ``--help`` is
fast). ``bso_deploy.deploy_cli`` and ``bso_deploy.commands.*`` do the work."""

from __future__ import annotations

import argparse

from .cli_args import add_choice, add_choice_list
from .hardware.spec import PROFILES
from .options import (
    BACKEND_NAMES,
    CALIBRATION_DATASET,
    DATASET_NAMES,
    DEFAULT_DATASET_SAMPLES,
    DEFAULT_DATASET_TIME_STEPS,
    FIXED_BACKEND_NAMES,
    SCALINGS,
)

MODEL_HELP = ("a NIR graph (.nir), a compiled network (.npz, `bso-deploy compile`) or a lava-dl netx file "
              "(.net/.h5), recognised by content")

RUN_DESCRIPTION = """\
Runs a model on one backend: the float NIR model, or a fixed-point one (the bit-exact NumPy simulator, the
torch integer reference, Lava). A NIR graph is compiled to fixed point on the fly (the compile options
below). Reads the model and --inputs (.npy); writes --out (.npz: output, latency, predictions, and every
layer's spikes with --record all) and prints one JSON line (spike counts, saturation, accuracy with
--labels). Warnings go to stderr and into the JSON."""

PARITY_DESCRIPTION = """\
Runs the same inputs on several fixed-point backends and compares them spike for spike and state for state
(exit code 1 on any mismatch), and, for a NIR graph, the float model against the fixed-point network
(accuracy, spikes per layer). Inputs: the first SAMPLES test samples of --dataset (default: the data set the
graph was trained on, else digits) or a .npy (--inputs). Event data sets (nmnist, dvsgesture) are binned into
one frame of counts per time step and enter unscaled: input scale 1, input range the training split's largest
count. Prints a summary, or one JSON object with --json."""

COMPILE_DESCRIPTION = """\
Compiles a NIR graph (or a training checkpoint, exported to NIR first) to a fixed-point network
(docs/fixed-point.md §10). Writes the FixedPointNetwork (--out NET.npz, input scale inside, runs with
`bso-deploy run`) and a quantization report beside it (NET.json; with calibration data also its saturation
and float-vs-fixed spike statistics); prints one JSON line. A lava-dl netx file is converted as it is. A graph
for an event data set (--dataset, else the one it was trained on) gets input scale 1 and the training split's
largest count as its input range, so that the counts reach it exactly (read from --data-root)."""


DEPLOY_DATA_ROOT_HELP = ("folder of the data set's local files, as `bso-deploy train --data-root` reads them "
                         "(default: $BSO_DATA, else ./data, then /usr/share/datasets/<name>/ for (fashion-)mnist)")


def add_compile_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``compile_nir`` (docs/fixed-point.md §10), for a NIR graph compiled by the command."""
    group = parser.add_argument_group("compiling a NIR graph (docs/fixed-point.md §10)")
    group.add_argument("--input-scale", type=float, default=None,
                       help="inputs x enter as round(scale x) (default 255 for x in [0, 1]; with calibration "
                            "data 1 for integer data such as event counts, else 255 / their largest value)")
    group.add_argument("--input-range", type=float, default=None,
                       help="largest float input (default 1, or the calibration data's): sets the largest "
                            "integer input round(scale range) <= 255 (e.g. event counts)")
    group.add_argument("--weight-bits", type=int, default=None, help="bits of the integer weights (default 8)")
    add_choice(group, "--scaling", SCALINGS, "scaling",
               help="worst-case: per-layer scales from the worst case; calibrated: from the activity on "
                    "--calibrate-on data (default: calibrated when --calibrate-on is given, else worst-case)")
    group.add_argument("--calibrate-on", default=None,
                       help=f"calibration data: '{CALIBRATION_DATASET}' (its training samples) or a .npy of "
                            "(T, batch, *input_shape) or (batch, *input_shape) (repeated --time-steps times)")
    group.add_argument("--no-bias-correction", action="store_true",
                       help="with calibration data, do not add the mean current the weight rounding takes away "
                            "to each neuron's bias (docs/fixed-point.md §10.6)")
    group.add_argument("--calibration-samples", type=int, default=None,
                       help=f"samples of the calibration data (default: {DEFAULT_DATASET_SAMPLES} for "
                            f"{CALIBRATION_DATASET}, all of a file)")


def _add_profile(parser: argparse.ArgumentParser) -> None:
    add_choice(parser, "--profile", tuple(PROFILES), "profile",
               help="fixed-point profile for a NIR graph (default bso; docs/fixed-point.md §6); a compiled "
                    "network keeps its own")


def _add_dt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dt", type=float, default=None,
                        help="time step in seconds of the NIR graph (default: from the graph's metadata)")


def add_run_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a model on a float or fixed-point backend",
                                   description=RUN_DESCRIPTION)
    parser.add_argument("model", help=MODEL_HELP)
    add_choice(parser, "--backend", BACKEND_NAMES, "backend", required=True, valid="valid backends",
               help="float (NIR graphs only), sim, torch or lava (Lava's runtime: our processes in profile bso, "
                    "Lava's Dense + LIF in profile loihi)")
    _add_profile(parser)
    _add_dt(parser)
    parser.add_argument("--inputs", required=True,
                        help=".npy of shape (T, batch, *input_shape) or (batch, *input_shape)")
    parser.add_argument("--time-steps", type=int, default=None, help="repeat (batch, *input_shape) inputs T times")
    parser.add_argument("--labels", default=None, help=".npy of integer labels (batch,): adds the accuracy")
    parser.add_argument("--record", choices=["all"], default=None, help="also store every layer's spikes")
    parser.add_argument("--out", required=True, help="output .npz (output, latency, predictions, spikes/<layer>)")
    add_compile_options(parser)


def add_parity_parser(subparsers) -> None:
    parser = subparsers.add_parser("parity", help="compare backends spike for spike, and float against fixed",
                                   description=PARITY_DESCRIPTION)
    parser.add_argument("model", help=MODEL_HELP + "; compiled and netx networks have no float model")
    add_choice_list(parser, "--backends", FIXED_BACKEND_NAMES, "backend", default="sim,torch",
                    help="fixed-point backends to compare", valid="valid backends")
    _add_profile(parser)
    parser.add_argument("--samples", type=int, default=None,
                        help=f"samples to use: of the data set (default {DEFAULT_DATASET_SAMPLES}) or of --inputs "
                             "(default all; the batch axis, axis 1 of (T, batch, ...) inputs)")
    source = parser.add_mutually_exclusive_group()
    add_choice(source, "--dataset", DATASET_NAMES, "dataset",
               help="use the first SAMPLES test samples of this data set (default: the graph's training data set, "
                    "else digits)")
    source.add_argument("--inputs", default=None, help=".npy inputs, (T, batch, *input_shape) or (batch, ...)")
    parser.add_argument("--labels", default=None, help="with --inputs: .npy of integer labels (batch,)")
    parser.add_argument("--data-root", default=None, help=DEPLOY_DATA_ROOT_HELP)
    parser.add_argument("--time-steps", type=int, default=None,
                        help=f"steps per sample for (batch, ...) inputs and data sets (default: the graph's training "
                             f"T, else {DEFAULT_DATASET_TIME_STEPS}; event data sets: frames per sample); not needed "
                             "for (T, batch, ...) inputs")
    _add_dt(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_compile_options(parser)


def add_compile_parser(subparsers) -> None:
    parser = subparsers.add_parser("compile", help="compile a NIR graph to a fixed-point network (.npz + .json)",
                                   description=COMPILE_DESCRIPTION)
    parser.add_argument("model", help="a NIR graph (.nir), a training checkpoint (checkpoint.pt) or a lava-dl "
                                      "netx file (converted as it is), recognised by content")
    _add_profile(parser)
    parser.add_argument("--out", required=True, help="the network's .npz; the report goes to the same name .json")
    parser.add_argument("--time-steps", type=int, default=None,
                        help="steps per sample the network must run without saturating (default: the "
                             "calibration data's, else the graph's metadata, else the compiler's 32)")
    add_choice(parser, "--dataset", DATASET_NAMES, "dataset",
               help="data set the network will run on (default: the graph's training data set); an event data "
                    "set sets the default input scale (1) and input range (its training split's largest count)")
    parser.add_argument("--data-root", default=None, help=DEPLOY_DATA_ROOT_HELP)
    _add_dt(parser)
    add_compile_options(parser)
