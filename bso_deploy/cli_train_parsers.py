"""The options of ``bso-deploy train``, ``export`` and ``learn`` (argparse only, no torch: ``--help`` is
fast). The defaults are those of ``TrainConfig`` and ``AdaptationConfig``, which import torch; the test
``tests/test_cli.py`` checks that they agree. ``cli.py`` maps each command to its implementation."""

from __future__ import annotations

import argparse

from .cli_args import add_choice
from .hardware.spec import PROFILES
from .options import (
    ADAPTATION_DATASETS,
    ADAPTATION_SHIFTS,
    BATCHNORM_STATISTICS,
    BINARY_CHOICES,
    DATASET_NAMES,
    DEFAULT_CNN_SPEC,
    DEVICES,
    ENCODER_NAMES,
    EXPORT_FORMATS,
    FP_OPTIMIZERS,
    LEARNER_NAMES,
    LEARNING_ERROR_SHAPES,
    LEARNING_POPULATION_RULES,
    LEARNING_ROUNDINGS,
    LEARNING_VARIANTS,
    LR_SCHEDULES,
    METHODS,
    MODELS,
    ONNX_SEMANTICS,
    RESET_MODES,
    parse_cnn_spec,
)

TRAIN_DESCRIPTION = """\
Trains a binary spiking network online (OTTT-style, one update per time step) with T-BSO, BSO or Bop, or
offline with the BPTT + straight-through baseline. Reads the data set from local files (--data-root; nothing
is downloaded); writes OUT/checkpoint.pt (after every epoch: --resume continues from it), OUT/metrics.json
and OUT/training.png, and prints one JSON line (accuracy in float and, after deployment to fixed point, on
the integer network)."""

EXPORT_DESCRIPTION = """\
Exports a training checkpoint to a file other tools read: a NIR graph (nir), a lava-dl netx network for
Loihi (netx, compiled to fixed point first) or an ONNX model of one time step (onnx, float or fixed-point
arithmetic). Writes --out and prints one JSON line; rounding notes go to stderr (docs/export.md)."""

LEARN_DESCRIPTION = """\
On-chip adaptation (docs/onchip-learning.md §12): trains an SNN on --dataset (digits or Fashion-MNIST),
deploys it to fixed point, shifts the inputs, then lets the deployed network learn its output layer with the
integer learning rule on the chosen backend. With no options this is the documented reference scenario on the
simulator. Prints the accuracy before/after (fixed point and float), the flip agreement with the float rule
and the bits per synapse; writes OUT/learn.json and OUT/learn.png."""


DATA_ROOT_HELP = (
    "folder of the data set's local files (nothing is downloaded; digits needs none): MNIST / Fashion-MNIST idx "
    "files, plain or .gz, in it, its raw/ or its MNIST|FashionMNIST/raw/; cifar-10-batches-py/; NMNIST/ or "
    "DVSGesture/ (default: $BSO_DATA, else ./data, then /usr/share/datasets/<name>/ for fashion-mnist and mnist)")


def cnn_spec(text: str) -> str:
    """``--cnn``: the spec as given, once :func:`bso_deploy.options.parse_cnn_spec` accepts it."""
    try:
        parse_cnn_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a binary SNN online with T-BSO, BSO or Bop",
                                   description=TRAIN_DESCRIPTION)
    add_choice(parser, "--dataset", DATASET_NAMES, "dataset", default="digits", help="data set (default %(default)s)")
    add_choice(parser, "--method", METHODS, "method", default="tbso",
               help="training method: tbso, bso, bop (online) or bptt-ste (offline baseline; default %(default)s)")
    add_choice(parser, "--model", MODELS, "model", default="mlp",
               help="network: mlp (fully connected), cnn (conv blocks of --cnn, deployable) or vgg (the CIFAR "
                    "VGG; default %(default)s)")
    parser.add_argument("--time-steps", type=int, default=4, help="time steps T per sample (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per batch (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights, data order and rate encoding (default %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help=f"torch device: {', '.join(DEVICES)} or cuda:N (default %(default)s)")
    add_choice(parser, "--binary", BINARY_CHOICES, "binary layer choice", default="hidden",
               help="which layers have 1-bit weights: hidden (all but the first and the readout), all, none "
                    "(default %(default)s)")
    parser.add_argument("--hidden", default="256,256", help="MLP hidden sizes, comma separated (default %(default)s)")
    parser.add_argument("--cnn", default=DEFAULT_CNN_SPEC, type=cnn_spec,
                        help="--model cnn blocks separated by '-': NC3 = 3x3 conv with N channels + BatchNorm + "
                             "LIF, Pk = k x k pooling; a Linear classifier follows (default %(default)s)")
    add_choice(parser, "--batchnorm", BATCHNORM_STATISTICS, "BatchNorm statistics", default="shared",
               help="BatchNorm statistics: shared (torch's: batch statistics in training, one running set for "
                    "evaluation), per-step (one running set per time step in float evaluation; deployment folds "
                    "their pooled mean and variance) or running (the training forward normalizes with the "
                    "running statistics that deploy, gradients as with batch statistics; default %(default)s)")
    add_choice(parser, "--encoder", ENCODER_NAMES, "encoder", default="direct",
               help="input encoding: direct (the same analog input every step) or rate (Bernoulli spikes; "
                    "default %(default)s)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="flip threshold of the binary optimizer (default: the method's own)")
    parser.add_argument("--momentum", type=float, default=0.999,
                        help="momentum of the binary optimizer's flip statistic (default %(default)s)")
    parser.add_argument("--lr", type=float, default=0.1,
                        help="learning rate of the full-precision parameters (default %(default)s)")
    parser.add_argument("--ste-lr", type=float, default=1e-3,
                        help="Adam learning rate of the latent weights of bptt-ste (default %(default)s)")
    add_choice(parser, "--fp-optimizer", FP_OPTIMIZERS, "full-precision optimizer", default="sgd",
               help="optimizer of the full-precision parameters (default %(default)s)")
    parser.add_argument("--decay-every", type=int, default=0,
                        help="multiply threshold and 1-momentum by --decay-factor every N epochs (0: never)")
    parser.add_argument("--decay-factor", type=float, default=0.1,
                        help="factor of --decay-every (default %(default)s)")
    add_choice(parser, "--lr-schedule", LR_SCHEDULES, "learning-rate schedule", default="constant",
               help="learning rate of the full-precision (and bptt-ste latent) weights per epoch: constant, or "
                    "cosine from --lr to 0 over --epochs (default %(default)s)")
    add_choice(parser, "--reset", RESET_MODES, "reset mode", default="subtract",
               help="LIF reset after a spike: subtract the threshold or set v to zero (default %(default)s)")
    parser.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    parser.add_argument("--num-workers", type=int, default=0, help="data loader worker processes (default 0)")
    parser.add_argument("--hardware-aware", action="store_true",
                        help="run the last epochs' forward pass on the deployed integer network (profile bso)")
    parser.add_argument("--hardware-aware-epochs", type=int, default=5,
                        help="how many final epochs are hardware-aware (with --hardware-aware; default %(default)s)")
    parser.add_argument("--fixed-point-samples", type=int, default=10000,
                        help="test samples for the fixed-point evaluation after training (0: none; default "
                             "%(default)s)")
    parser.add_argument("--out", required=True, help="run directory (checkpoint.pt, metrics.json, training.png)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained checkpoint (NIR, lava-dl netx, ONNX)",
                                   description=EXPORT_DESCRIPTION)
    parser.add_argument("checkpoint", help="checkpoint.pt written by `bso-deploy train`")
    add_choice(parser, "--format", EXPORT_FORMATS, "export format", default="nir",
               help="file format (docs/export.md; default %(default)s)")
    parser.add_argument("--out", required=True, help="output file (written atomically)")
    parser.add_argument("--dt", type=float, default=1e-3,
                        help="time step in seconds recorded in the NIR graph (default %(default)s)")
    add_choice(parser, "--semantics", ONNX_SEMANTICS, "ONNX semantics", default="float",
               help="onnx: float (the trained model's step) or fixed (the integer network of "
                    "docs/fixed-point.md; default %(default)s)")
    add_choice(parser, "--profile", tuple(PROFILES), "profile", default="bso",
               help="onnx --semantics fixed: fixed-point profile (default %(default)s)")
    parser.add_argument("--input-scale", type=float, default=None,
                        help="netx, onnx fixed: inputs x in [0, 1] enter as round(scale x) (default 255)")
    parser.add_argument("--time-steps", type=int, default=None,
                        help="netx, onnx fixed: steps the readout must sum without saturating (default: training T)")


def comma_separated_ints(text: str) -> tuple[int, ...]:
    """``"256,128"`` -> ``(256, 128)``; empty items are skipped."""
    return tuple(int(item) for item in str(text).split(",") if item.strip())


# bso-deploy learn: (AdaptationConfig field, type, default, help); tuple fields are comma-separated ints.
# tests/test_cli.py checks that the fields and defaults are AdaptationConfig's.
LEARN_NUMBERS = (
    ("samples", int, 1000, "length of the adaptation stream (shifted training images)"),
    ("passes", int, 1, "times the stream is repeated"),
    ("time_steps", int, 4, "time steps T per sample"),
    ("seed", int, 0, "seed of everything: training, stream order, stochastic rounding"),
    ("train_epochs", int, 5, "epochs of the pretraining (T-BSO on the data set)"),
    ("train_batch_size", int, 32, "batch size of the pretraining"),
    ("hidden", tuple, "256", "hidden sizes of the pretrained MLP, comma separated"),
    ("momentum", float, 0.984375, "float momentum of the rule, mapped to integers (docs/onchip-learning.md §9)"),
    ("threshold", float, 1.0, "float flip threshold of the rule"),
    ("variance_decay", float, 0.99609375, "float decay of T-BSO's variance estimate"),
    ("error_target", float, 8.0, "float margin A of the readout error (docs/onchip-learning.md §5)"),
    ("momentum_bits", int, 16, "bits of the on-chip momentum (signed, saturating)"),
    ("precision_bits", int, 4, "extra momentum resolution: the product shift is this many bits smaller than the "
     "worst case needs"),
    ("t_epoch", int, 1, "flips are decided at every T_EPOCH-th learning step only (momenta update every step)"),
    ("eval_samples", int, 0, "shifted test images for the accuracies (0: all 450)"),
    ("curve_points", int, 5, "accuracy checkpoints along the stream (for the plot)"),
    ("population", int, 1, "binary readout neurons per class, their outputs summed (docs/onchip-learning.md §14; "
     "1 to 64)"),
    ("bias_shift", int, 6, "with --learn-bias: the float bias moves by 2**-BIAS_SHIFT per float error unit and "
     "step (docs/onchip-learning.md §15)"),
    ("hidden_threshold", float, 1.0, "with --feedback-alignment: the hidden layer's float flip threshold"),
    ("pretrain_classes", int, 0, "class-incremental scenario: offline pretraining on the classes 0 .. N-1 only, "
     "the chip learns the others from the stream (0: pretrain on all; docs/onchip-learning.md §19)"),
    ("counter_threshold", float, 8.0, "with --population-rule counter: float error x trace per member that one flip "
     "consumes (docs/onchip-learning.md §20)"),
    ("counter_growth_shift", int, 10, "with --population-rule counter: the threshold grows by itself every "
     "2**N learning steps (0: fixed; §20)"),
)


def add_learn_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "learn", help="on-chip adaptation: a deployed SNN learns its output layer in fixed point",
        description=LEARN_DESCRIPTION)
    add_choice(parser, "--dataset", ADAPTATION_DATASETS, "dataset", default="digits",
               help="data set of the pretraining and the stream (default %(default)s)")
    parser.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    add_choice(parser, "--shift", ADAPTATION_SHIFTS, "shift", default="invert",
               help="input shift: invert (1 - x), rotate (by 20 degrees), contrast (halved, grey background), shift "
                    "(images moved by two pixels) or none (docs/onchip-learning.md §19; default %(default)s)")
    add_choice(parser, "--variant", LEARNING_VARIANTS, "variant", default="tbso",
               help="learning rule: T-BSO (per-time-step second moment) or BSO (momentum reset on flip; default "
                    "%(default)s)")
    add_choice(parser, "--backend", LEARNER_NAMES, "learner backend", default="sim",
               help="where the rule runs: the NumPy simulator, the torch reference or Lava (default %(default)s)")
    add_choice(parser, "--rounding", LEARNING_ROUNDINGS, "rounding", default="nearest",
               help="rounding R() of the rule's shifts: round half away from zero or seeded stochastic "
                    "(docs/onchip-learning.md §8; default %(default)s)")
    add_choice(parser, "--population-rule", LEARNING_POPULATION_RULES, "population rule", default="staggered",
               help="how a population readout's members learn: staggered thresholds on per-synapse momenta (§14) "
                    "or one shared counter per class and input (docs/onchip-learning.md §20; default %(default)s)")
    add_choice(parser, "--error-shape", LEARNING_ERROR_SHAPES, "error shape", default="margin",
               help="the readout's on-chip error: the clipped margin of every class (§5) or a multi-class hinge "
                    "moving only the label and its strongest rival (docs/onchip-learning.md §21; default "
                    "%(default)s)")
    for name, kind, default, text in LEARN_NUMBERS:
        parser.add_argument("--" + name.replace("_", "-"), type=comma_separated_ints if kind is tuple else kind,
                            default=default, help=f"{text} (default %(default)s)")
    parser.add_argument("--learn-bias", action="store_true",
                        help="the readout's integer biases learn too, from the same error (docs/onchip-learning.md "
                             "§15; default: off)")
    parser.add_argument("--feedback-alignment", action="store_true",
                        help="the last hidden layer learns on chip too, from the output error through a fixed random "
                             "binary matrix (needs two hidden sizes, e.g. --hidden 256,256; docs/onchip-learning.md "
                             "§18; default: off)")
    parser.add_argument("--out", default="runs/learn", help="output directory (learn.json, learn.png)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def learn_config_values(args: argparse.Namespace) -> dict:
    """The AdaptationConfig keyword arguments of parsed ``bso-deploy learn`` arguments."""
    names = ["dataset", "data_root", "shift", "variant", "backend", "rounding", "learn_bias",
             "feedback_alignment", "population_rule", "error_shape"]
    names += [name for name, *_ in LEARN_NUMBERS]
    return {name: getattr(args, name) for name in names}
