"""The on-chip adaptation scenario's typed configuration and result (:mod:`.adaptation` runs it;
docs/onchip-learning.md §12): frozen dataclasses validated on construction, ``to_dict`` / ``from_dict`` with
a version."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from ..hardware.learning_rule import ERROR_SHAPES, MAX_BIAS_BITS, MAX_POPULATION, POPULATION_RULES
from ..options import ADAPTATION_DATASETS as DATASETS
from ..options import ADAPTATION_SHIFTS as SHIFTS
from ..options import LEARNING_ROUNDINGS as ROUNDINGS
from ..options import LEARNING_VARIANTS as VARIANTS

__all__ = ["ADAPTATION_VERSION", "DATASETS", "SHIFTS", "AdaptationConfig", "AdaptationResult"]

ADAPTATION_VERSION = 1

def check_choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    """ValueError naming ``AdaptationConfig.<name>`` and the valid values unless ``value`` is one of them."""
    if value not in valid:
        raise ValueError(f"AdaptationConfig.{name} must be one of {', '.join(valid)}; got {value!r}")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"AdaptationConfig.{name} must be an integer >= {low}, got {value!r}")


def _check_learning_capacity(config: Any) -> None:
    """ValueError for a population or learned bias that the on-chip rule cannot hold (docs/onchip-learning.md
    §14, §15)."""
    if config.population > MAX_POPULATION:
        raise ValueError(f"AdaptationConfig.population must be at most {MAX_POPULATION} neurons per class, got "
                         f"{config.population}")
    if not isinstance(config.learn_bias, bool):
        raise ValueError(f"AdaptationConfig.learn_bias must be True or False, got {config.learn_bias!r}")
    if not isinstance(config.feedback_alignment, bool):
        raise ValueError("AdaptationConfig.feedback_alignment must be True or False, got "
                         f"{config.feedback_alignment!r}")
    if config.feedback_alignment and len(config.hidden) < 2:
        raise ValueError("AdaptationConfig.feedback_alignment trains the last hidden layer, which must be binary: give "
                         f"two hidden sizes (e.g. 256,256; the first layer is 8-bit), got hidden {config.hidden}")
    check_choice("population_rule", config.population_rule, POPULATION_RULES)
    check_choice("error_shape", config.error_shape, ERROR_SHAPES)
    if config.population_rule == "counter" and config.feedback_alignment:
        raise ValueError("AdaptationConfig.population_rule = 'counter' (§20) learns the readout only; it does not "
                         "combine with feedback_alignment")
    if config.bias_shift > MAX_BIAS_BITS - 14:
        raise ValueError(f"AdaptationConfig.bias_shift must be at most {MAX_BIAS_BITS - 14} (the bias register "
                         f"holds 13 + bias_shift <= {MAX_BIAS_BITS} bits), got {config.bias_shift}")


def _check_float(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value < high:
        raise ValueError(f"AdaptationConfig.{name} must be a number in [{low}, {high}), got {value!r}")


@dataclass(frozen=True)
class AdaptationConfig:
    """The adaptation scenario (:mod:`.adaptation`); the defaults are the documented reference scenario
    (docs/onchip-learning.md §12).

    dataset: "digits" or "fashion-mnist", read as ``load_dataset`` does from ``data_root`` (None: ``$BSO_DATA``,
    else ``./data``, then ``/usr/share/datasets/fashion-mnist``). shift: "invert" | "shift" | "none". samples:
    length of the adaptation stream (shifted training images, in a seeded order); passes: times the stream is
    repeated. time_steps: T. variant: "tbso" | "bso". seed: everything (training, stream order, stochastic
    rounding). backend: learner name (``sim``, ``torch``, ``lava``). train_epochs, train_batch_size, hidden: the
    pretraining (MLP, binary layers). momentum, threshold, variance_decay: the float rule's hyperparameters, mapped to
    integers by ``LearningRule.from_float`` (docs/onchip-learning.md §9); error_target: the float margin A of
    the readout error (§5). rounding, t_epoch: see ``LearningRule``. eval_samples: shifted test images used
    for the accuracies (0: the whole test set, 450 digits or 10,000 Fashion-MNIST images). curve_points:
    accuracy checkpoints along the stream (for the plot). population: binary readout neurons per class, their
    outputs summed (docs/onchip-learning.md §14; 1: one per class). learn_bias: the readout's biases learn
    too (§15), by 2**-bias_shift float units per float error unit and step. pretrain_classes: 0, or K > 0 for
    the class-incremental scenario (§19): offline pretraining on the classes 0 .. K-1 only, the chip learns the
    others from the stream (of all classes). feedback_alignment: the last hidden layer (binary: two hidden sizes)
    learns on chip too, by feedback alignment (§18), with the float threshold hidden_threshold (§19).
    population_rule: "staggered" (§14) or "counter" (§20: one accumulator per class and input, a flip per
    counter_threshold float units of summed error x trace, the threshold growing by itself every
    2**counter_growth_shift learning steps; 0: fixed). error_shape: the readout's on-chip error, "margin" (§5)
    or "hinge" (§21: only the label and its strongest rival move, by +-error_target, while the label leads by
    less than error_target).
    """

    dataset: str = "digits"
    data_root: str | None = None
    shift: str = "invert"
    samples: int = 1000
    passes: int = 1
    time_steps: int = 4
    variant: str = "tbso"
    seed: int = 0
    backend: str = "sim"
    train_epochs: int = 5
    train_batch_size: int = 32
    hidden: tuple[int, ...] = (256,)
    momentum: float = 0.984375
    threshold: float = 1.0
    variance_decay: float = 0.99609375
    error_target: float = 8.0
    momentum_bits: int = 16
    precision_bits: int = 4
    rounding: str = "nearest"
    t_epoch: int = 1
    eval_samples: int = 0
    curve_points: int = 5
    population: int = 1
    learn_bias: bool = False
    bias_shift: int = 6
    pretrain_classes: int = 0
    feedback_alignment: bool = False
    hidden_threshold: float = 1.0
    population_rule: str = "staggered"
    counter_threshold: float = 8.0
    counter_growth_shift: int = 10
    error_shape: str = "margin"

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("shift", self.shift, SHIFTS)
        if self.data_root is not None and (not isinstance(self.data_root, str) or not self.data_root):
            raise ValueError(f"AdaptationConfig.data_root must be a folder (a non-empty string) or None, got "
                             f"{self.data_root!r}")
        check_choice("variant", self.variant, VARIANTS)
        check_choice("rounding", self.rounding, ROUNDINGS)
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"AdaptationConfig.backend must be a learner name (sim, torch, lava), got "
                             f"{self.backend!r}")
        for name, low in (("samples", 1), ("passes", 1), ("time_steps", 1), ("seed", 0), ("train_epochs", 1),
                          ("train_batch_size", 1), ("t_epoch", 1), ("momentum_bits", 2), ("precision_bits", 0),
                          ("eval_samples", 0),
                          ("curve_points", 1), ("population", 1), ("bias_shift", 0),
                          ("pretrain_classes", 0), ("counter_growth_shift", 0)):
            _check_int(name, getattr(self, name), low)
        try:
            hidden = tuple(self.hidden)
        except TypeError:
            raise ValueError(f"AdaptationConfig.hidden must be a sequence of sizes, got {self.hidden!r}") from None
        if not hidden or any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1 for h in hidden):
            raise ValueError(f"AdaptationConfig.hidden must be one or more sizes >= 1, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        _check_float("momentum", self.momentum, 0.0, 1.0)
        _check_float("variance_decay", self.variance_decay, 0.0, 1.0)
        _check_float("threshold", self.threshold, 0.0, math.inf)
        _check_float("error_target", self.error_target, 1e-9, math.inf)
        _check_float("hidden_threshold", self.hidden_threshold, 0.0, math.inf)
        _check_float("counter_threshold", self.counter_threshold, 1e-9, math.inf)
        _check_learning_capacity(self)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        data["version"] = ADAPTATION_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptationConfig:
        data = dict(data)
        version = data.pop("version", ADAPTATION_VERSION)
        if version != ADAPTATION_VERSION:
            raise ValueError(f"adaptation config version {version} is not supported (this reads "
                             f"{ADAPTATION_VERSION})")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AdaptationConfig keys {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class AdaptationResult:
    """What :func:`run_adaptation` measured. Accuracies are fractions of the shifted test images.

    accuracy_unshifted: fixed point on the unshifted test set (the deployed network's own accuracy).
    accuracy_before / accuracy_after: fixed point on the shifted test set before / after on-chip learning.
    float_accuracy_before / float_accuracy_after: the float model, before / after the float optimizer.
    flip_agreement: F1 of the integer rule's flip events against the float optimizer's (matched on sample,
    time step and synapse); flip_precision, flip_recall; flips, float_flips: event counts.
    sign_agreement: share of the learning layer's signs equal in the two after the stream.
    bits_per_synapse: learning state per synapse (1-bit weight + momentum), float_bits_per_synapse: 33.
    curve: [{"samples": n, "accuracy": fixed, "float_accuracy": float, "stream_accuracy": share of the first n
    stream samples the chip classified correctly while it learned}, ...] along the stream.
    rule: the integer rule (LearningRule.to_dict()); quantization: the learning layer's compiler report.
    reference_accuracy: the upper reference (docs/onchip-learning.md §16): a float logistic regression of the
    same learnable parameters (readout weights, and biases with learn_bias) on the chip's spike counts of the
    same stream samples, on the shifted test set. scenario: the scenario's name (the shift).
    bits_per_bias: learned-bias register bits per readout neuron (0 without learn_bias).
    new_class_accuracy_before/after, old_class_accuracy_before/after (class-incremental only, else None): the
    fixed-point accuracy on the test images of the classes >= pretrain_classes (new) and below (old), C-way.
    """

    config: AdaptationConfig
    backend: str
    accuracy_unshifted: float
    accuracy_before: float
    accuracy_after: float
    float_accuracy_before: float
    float_accuracy_after: float
    flip_agreement: float
    flip_precision: float
    flip_recall: float
    flips: int
    float_flips: int
    sign_agreement: float
    bits_per_synapse: int
    float_bits_per_synapse: int
    curve: list[dict[str, float]] = field(default_factory=list)
    rule: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    reference_accuracy: float = 0.0
    scenario: str = ""
    bits_per_bias: int = 0
    new_class_accuracy_before: float | None = None
    new_class_accuracy_after: float | None = None
    old_class_accuracy_before: float | None = None
    old_class_accuracy_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = self.config.to_dict()
        return data
