"""The named sets of values that bso-deploy's options take (methods, models, data sets, backends, ...),
defined once here, with no imports, so that the command line can offer them as ``choices`` without
importing torch, NIR or Lava (``bso-deploy --help`` stays fast). The modules that validate these names
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
MODELS = ("mlp", "vgg")
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
ADAPTATION_SHIFTS = ("invert", "shift", "none")
LEARNING_VARIANTS = ("tbso", "bso")
LEARNING_ROUNDINGS = ("nearest", "stochastic")

# Benchmarks (bso_deploy.bench).
DEPLOY_BENCH_NETWORKS = ("snntorch-mlp", "snntorch-rnn", "sinabs-cnn", "lavadl-mlp")
