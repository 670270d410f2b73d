"""The named sets of values that bso-deploy's options take (methods, models, data sets, backends, ...),
defined once here, with no imports, so that the command line can offer them as ``choices`` without
importing torch, NIR or Lava (``bso-deploy --help`` stays fast); likewise the grammar of ``--cnn``
(:func:`parse_cnn_spec`), which the parser checks and the model builder reads. The modules that validate these names
(``config``, ``models``, ``neuron``, ``hardware.backends``, ``hardware.compiler``, ``export.onnx``,
``experiments.adaptation``, ``bench.thirdparty``) import them from here. Fixed-point profiles are the keys
of ``hardware.spec.PROFILES`` (a torch-free module), not repeated here.
"""

from __future__ import annotations

# Training (bso_deploy.config.TrainConfig, bso_deploy.models, bso_deploy.neuron).
METHODS = ("tbso", "bso", "bop", "bptt-ste")
ONLINE_METHODS = ("tbso", "bso", "bop")
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "cifar10", "nmnist", "dvsgesture")
EVENT_DATASET_NAMES = ("nmnist", "dvsgesture")  # event cameras: frames of event counts per step (event_data)
ENCODER_NAMES = ("direct", "rate", "frames")  # frames: samples with a time axis, frame t at step t
FP_OPTIMIZERS = ("sgd", "adam")
DEVICES = ("cpu", "cuda", "auto")  # and cuda:N
MODELS = ("mlp", "vgg", "cnn")
DEFAULT_CNN_SPEC = "32C3-P2-64C3-P2"  # --model cnn: conv and pooling blocks (parse_cnn_spec), then the classifier
BATCHNORM_STATISTICS = ("shared", "per-step", "running")  # BatchNorm statistics (bso_deploy.layers.make_batchnorm)
LR_SCHEDULES = ("constant", "cosine")  # learning rate of the full-precision (and latent) weights per epoch
BINARY_CHOICES = ("hidden", "all", "none")
RESET_MODES = ("subtract", "zero")  # the training LIF's reset after a spike

# Export (bso-deploy export; bso_deploy.export.onnx).
EXPORT_FORMATS = ("nir", "netx", "onnx")
ONNX_SEMANTICS = ("float", "fixed")

# Running and compiling (bso_deploy.hardware.backends, bso_deploy.hardware.compiler).
BACKEND_NAMES = ("float", "sim", "torch", "lava")
FIXED_BACKEND_NAMES = ("sim", "torch", "lava")
SCALINGS = ("calibrated", "worst-case")  # compile_nir's scaling modes (docs/fixed-point.md §10.3, §10.6)
CALIBRATION_DATASET = "digits"  # --calibrate-on digits: its training split (any other value is a .npy file)
DEFAULT_DATASET_SAMPLES = 64  # samples of a data set that parity and calibration take when --samples is not given
DEFAULT_DATASET_TIME_STEPS = 4  # steps each data set sample is repeated for when --time-steps is not given

# On-chip learning (bso_deploy.experiments.adaptation, hardware learners).
LEARNER_NAMES = ("sim", "torch", "lava")
ADAPTATION_DATASETS = ("digits", "fashion-mnist")
ADAPTATION_SHIFTS = ("invert", "rotate", "contrast", "shift", "none")
# bso-deploy bench learn: the scenario and learner-configuration names of bso_deploy/bench/learn_table.py
# (its SCENARIOS and LEARNERS tables; tests/test_cli.py checks they agree)
LEARN_BENCH_SCENARIOS = ("digits/invert", "digits/rotate", "digits/contrast", "digits/class-incremental",
                         "fashion-mnist/invert", "fashion-mnist/class-incremental")
LEARN_BENCH_DEFAULT_SCENARIOS = LEARN_BENCH_SCENARIOS
LEARN_BENCH_LEARNERS = ("P1", "P1+bias", "P1+bias+theta3", "P8+theta3", "P8+bias+theta3", "256-256:P1+bias",
                        "256-256:P1+bias+FA", "P8+bias+counter", "P8+bias+counter+hinge",
                        "512:P8+bias+counter+hinge")
LEARN_BENCH_DEFAULT_LEARNERS = ("P1", "P8+theta3", "P8+bias+counter", "P8+bias+counter+hinge",
                                "512:P8+bias+counter+hinge")
LEARNING_VARIANTS = ("tbso", "bso")
LEARNING_ROUNDINGS = ("nearest", "stochastic")
LEARNING_POPULATION_RULES = ("staggered", "counter")  # hardware/learning_rule.py POPULATION_RULES (§14, §20)
LEARNING_ERROR_SHAPES = ("margin", "hinge")  # hardware/learning_rule.py ERROR_SHAPES (§5, §21)

# Benchmarks (bso_deploy.bench).
DEPLOY_BENCH_NETWORKS = ("snntorch-mlp", "snntorch-rnn", "sinabs-cnn", "lavadl-mlp")
DATA_BENCH_DATASETS = ("digits", "mnist", "fashion-mnist")  # bench data: image sets that deploy (inputs in [0, 1])
DATA_BENCH_MODELS = ("mlp", "cnn")
DATA_BENCH_METHODS = ("tbso", "bso", "bptt-ste")


def parse_cnn_spec(spec: str) -> tuple[tuple[str, int], ...]:
    """``"32C3-P2-64C3-P2"`` -> ``(("conv", 32), ("pool", 2), ("conv", 64), ("pool", 2))``.

    Blocks separated by ``-``: ``<channels>C3`` is a 3x3 convolution (zero padding 1, stride 1) + BatchNorm2d
    + LIF; ``P<k>`` is k x k non-overlapping pooling (average pooling in training, a sum pool with the
    1 / k^2 folded into the next synapse at deployment). The Flatten + Linear classifier is implicit."""
    blocks: list[tuple[str, int]] = []
    for token in str(spec).upper().split("-"):
        token = token.strip()
        if token.endswith("C3") and token[:-2].isdigit() and int(token[:-2]) >= 1:
            blocks.append(("conv", int(token[:-2])))
        elif token.startswith("P") and token[1:].isdigit() and int(token[1:]) >= 2:
            blocks.append(("pool", int(token[1:])))
        else:
            raise ValueError(f"bad CNN block {token!r} in {spec!r}: use <channels>C3 (3x3 conv, channels >= 1) or "
                             f"P<k> (k x k pooling, k >= 2), separated by '-', e.g. 32C3-P2-64C3-P2")
    if not any(kind == "conv" for kind, _ in blocks):
        raise ValueError(f"CNN spec {spec!r} has no convolution; e.g. 32C3-P2-64C3-P2")
    return tuple(blocks)
