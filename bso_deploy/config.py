"""Training configuration: one frozen, validated dataclass that the CLI fills and checkpoints store."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from .errors import InvalidInputError
from .neuron import LIFParameters
from .options import (
    BATCHNORM_STATISTICS,
    BINARY_CHOICES,
    DATASET_NAMES,
    DEFAULT_CNN_SPEC,
    DEVICES,
    ENCODER_NAMES,
    EVENT_DATASET_NAMES,
    FP_OPTIMIZERS,
    LR_SCHEDULES,
    METHODS,
    MODELS,
    ONLINE_METHODS,
    RESET_MODES,
    parse_cnn_spec,
)

CONFIG_VERSION = 1

# Flip thresholds per method when none is given. T-BSO compares m / sqrt(v[t]) (a normalized quantity);
# BSO and Bop compare the raw momentum, so their threshold lives on the gradient's scale.
DEFAULT_THRESHOLDS = {"tbso": 5e-7, "bso": 1e-7, "bop": 1e-8, "bptt-ste": 0.0}  # bptt-ste: unused


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The type each annotation of TrainConfig stands for, checked before any other validation so that a config read
# from a file (a checkpoint) fails with a one-line error naming the field, never deep inside training.
_FIELD_CHECKS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "str": ("a string", lambda value: isinstance(value, str)),
    "str | None": ("a string or None", lambda value: value is None or isinstance(value, str)),
    "int": ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "float": ("a finite number", _is_number),
    "float | None": ("a finite number or None", lambda value: value is None or _is_number(value)),
    "bool": ("True or False", lambda value: isinstance(value, bool)),
    "tuple[int, ...]": ("a sequence of integers >= 1", lambda value: isinstance(value, tuple) and all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in value)),
}


# Integer fields whose bound the error names along with the type (the bounds are checked in __post_init__).
_INTEGER_BOUNDS = {"time_steps": " >= 1", "epochs": " >= 1", "batch_size": " >= 1", "hardware_aware_epochs": " >= 1",
                   "fixed_point_samples": " >= 0 (0: no fixed-point evaluation)"}


def _check_field_types(config: TrainConfig) -> None:
    for item in fields(config):
        value = getattr(config, item.name)
        description, check = _FIELD_CHECKS[str(item.type)]
        if not check(value):
            raise InvalidInputError(f"{item.name} must be {description}{_INTEGER_BOUNDS.get(item.name, '')}, "
                                    f"got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (and, with the seed, reproduces it)."""

    dataset: str = "digits"
    method: str = "tbso"
    model: str = "mlp"
    time_steps: int = 4
    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    device: str = "cpu"
    binary: str = "hidden"
    hidden: tuple[int, ...] = (256, 256)
    cnn: str = DEFAULT_CNN_SPEC
    batchnorm: str = "shared"
    encoder: str = "direct"  # for an event data set "direct" (the default) means its frames: stored as "frames"
    tau: float = 2.0
    v_threshold: float = 1.0
    reset: str = "subtract"
    surrogate_alpha: float = 4.0
    threshold: float | None = None
    momentum: float = 0.999
    variance_decay: float = 0.99999
    bop_gamma: float = 1e-4
    ste_lr: float = 1e-3
    fp_optimizer: str = "sgd"
    lr: float = 0.1
    fp_momentum: float = 0.9
    weight_decay: float = 0.0
    decay_every: int = 0
    decay_factor: float = 0.1
    lr_schedule: str = "constant"
    mse_weight: float = 0.05
    data_root: str | None = None
    num_workers: int = 0
    hardware_aware: bool = False
    hardware_aware_epochs: int = 5
    fixed_point_samples: int = 10000

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):  # from JSON or a checkpoint
            object.__setattr__(self, "hidden", tuple(self.hidden))
        _check_field_types(self)
        _choice("dataset", self.dataset, DATASET_NAMES)
        _choice("method", self.method, METHODS)
        _choice("model", self.model, MODELS)
        _choice("binary layer choice", self.binary, BINARY_CHOICES)
        _choice("encoder", self.encoder, ENCODER_NAMES)
        if self.dataset in EVENT_DATASET_NAMES and self.encoder == "direct":  # the default: frame t at step t
            object.__setattr__(self, "encoder", "frames")
        if (self.dataset in EVENT_DATASET_NAMES) != (self.encoder == "frames"):
            raise ValueError(f"encoder {self.encoder!r} does not fit data set {self.dataset!r}: the event data sets "
                             f"({', '.join(EVENT_DATASET_NAMES)}) are frames of event counts, fed with --encoder "
                             "frames (their default); the others are static inputs for --encoder direct or rate")
        _choice("reset mode", self.reset, RESET_MODES)
        _choice("full-precision optimizer", self.fp_optimizer, FP_OPTIMIZERS)
        _choice("BatchNorm statistics", self.batchnorm, BATCHNORM_STATISTICS)
        _choice("learning-rate schedule", self.lr_schedule, LR_SCHEDULES)
        parse_cnn_spec(self.cnn)  # validates the conv net's spec (used by model="cnn" only)
        if not (self.device in DEVICES or re.fullmatch(r"cuda:\d+", self.device)):
            raise ValueError(f"unknown device {self.device!r}; valid: cpu, cuda, cuda:N, auto")
        for name in ("time_steps", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.num_workers < 0 or self.decay_every < 0:
            raise ValueError("num_workers and decay_every must be >= 0")
        if self.threshold is not None and not self.threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        for name in ("momentum", "variance_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.mse_weight <= 1.0:
            raise ValueError(f"mse_weight must be in [0, 1], got {self.mse_weight}")
        if not (self.lr > 0 and self.ste_lr > 0 and 0 < self.bop_gamma < 1 and 0 < self.decay_factor <= 1):
            raise ValueError("lr and ste_lr must be > 0, bop_gamma in (0, 1), decay_factor in (0, 1]")
        self.lif_parameters()  # validates tau, v_threshold, reset, alpha
        if not isinstance(self.hardware_aware, bool):
            raise ValueError(f"hardware_aware must be True or False, got {self.hardware_aware!r}")
        if not isinstance(self.hardware_aware_epochs, int) or self.hardware_aware_epochs < 1:
            raise ValueError(f"hardware_aware_epochs must be an integer >= 1, got {self.hardware_aware_epochs!r}")
        if self.hardware_aware and not self.online:
            raise ValueError(f"hardware-aware training runs the online step; method {self.method!r} is not online. "
                             f"Use one of {', '.join(ONLINE_METHODS)}, or drop --hardware-aware")
        if self.hardware_aware and self.batchnorm == "per-step":
            raise ValueError("hardware-aware training folds one set of BatchNorm statistics; use --batchnorm "
                             "shared with --hardware-aware")
        if self.hardware_aware and self.dataset == "cifar10" and self.encoder == "direct":
            raise ValueError("hardware-aware training feeds the deployed network, whose input is unsigned "
                             "(docs/fixed-point.md §5.3), but normalized CIFAR-10 pixels go below 0; "
                             "use --encoder rate")
        if not isinstance(self.fixed_point_samples, int) or self.fixed_point_samples < 0:
            raise ValueError(f"fixed_point_samples must be an integer >= 0 (0: no fixed-point evaluation), "
                             f"got {self.fixed_point_samples!r}")

    @property
    def online(self) -> bool:
        """Online (per-step) training; False for the BPTT baseline."""
        return self.method in ONLINE_METHODS

    def is_hardware_aware_epoch(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) runs the integer forward: the last ``hardware_aware_epochs`` of
        ``epochs`` (all of them if that is more), with ``hardware_aware`` on."""
        return self.hardware_aware and epoch >= self.epochs - self.hardware_aware_epochs

    @property
    def flip_threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.method] if self.threshold is None else self.threshold

    def lif_parameters(self) -> LIFParameters:
        return LIFParameters(tau=self.tau, threshold=self.v_threshold, reset=self.reset,
                             alpha=self.surrogate_alpha)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        data["version"] = CONFIG_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        if not isinstance(data, dict):
            raise InvalidInputError(f"a config is a dict of fields, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ValueError(f"config version {version} is not supported (this bso-deploy reads {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        if isinstance(data.get("hidden"), list | tuple):
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)
