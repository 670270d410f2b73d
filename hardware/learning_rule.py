"""The on-chip learning rule's integer hyperparameters: :class:`LearningRule` (docs/onchip-learning.md §2) and
the constants every implementation of the rule shares (the NumPy rule in ``hardware/learning.py``, the torch
rule in ``hardware/torch_learning.py``, the Lava process in ``hardware/lava/learning/``).

No arithmetic of the rule lives here: each implementation writes it on its own (docs/fixed-point.md's
convention). The float -> integer mapping's steps are in ``hardware/learning_float.py``; the learner contract
(state, record, protocol, input checks) in ``hardware/learner.py``.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from .learning_float import (
    check_float_hyperparameters,
    decay_shift,
    momentum_scale,
    range_shift,
    tbso_flip_threshold,
    trace_reach,
)
from .spec import SPEC

__all__ = [
    "DECAY_BITS",
    "ERROR_SHAPES",
    "FEEDBACKS",
    "HASH_GOLDEN",
    "HASH_MASK",
    "HASH_MULTIPLIERS",
    "MAX_BIAS_BITS",
    "MAX_FEEDBACK_SHIFT",
    "MAX_POPULATION",
    "POPULATION_RULES",
    "ROUNDINGS",
    "RULE_VERSION",
    "SURROGATE_BITS",
    "VARIANTS",
    "LearningRule",
]

RULE_VERSION = 1  # population, bias, feedback and counter fields default to the rule without them: still 1
VARIANTS = ("bso", "tbso")
FEEDBACKS = ("host", "random")  # where a hidden learning layer's error comes from (§5, §18)
ROUNDINGS = ("nearest", "stochastic")
POPULATION_RULES = ("staggered", "counter")  # how a population's members flip: §14 thresholds, §20 shared counter
ERROR_SHAPES = ("margin", "hinge")  # the readout's on-chip error: §5 clipped margin, §21 multi-class hinge
SURROGATE_BITS = 4  # postsynaptic factor h: unsigned 4-bit table entries (§4)
DECAY_BITS = SPEC.decay_bits  # trace decay: 12-bit register, as the neuron's decays (§3)
HASH_MASK = (1 << 32) - 1  # the stochastic-rounding hash works on 32-bit words (§8)
HASH_MULTIPLIERS = (0x7FEB352D, 0x1B873593)  # odd, < 2**31: every product of a 32-bit word fits int64 (§8)
HASH_GOLDEN = 0x9E3779B9  # mixes the learning-step counter into the key (§8)
MAX_POPULATION = 64  # neurons per class of a population readout (§14)
MAX_BIAS_BITS = 32  # the learned bias register (§15)
MAX_FEEDBACK_SHIFT = 30  # the projected error's shift (§18): B e is below 2**31 in magnitude for any rule


def _check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"LearningRule.{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"LearningRule.{name} = {value} is outside [{low}, {high}]" + (f"; {hint}" if hint else ""))


@dataclass(frozen=True)
class LearningRule:
    """Integer hyperparameters of the on-chip BSO / T-BSO rule (docs/onchip-learning.md §2). One rule per
    learning layer; every implementation reads its fields and nothing else.

    variant: "bso" (momentum reset on flip, §6) or "tbso" (per-time-step second moment, §7).
    time_steps: T, input steps per sample: the learning window (§5) and the number of second moments.
    trace_decay, trace_increment, trace_bits: presynaptic trace x (unsigned, saturating, §3):
        x <- min(trunc(x (4096 - trace_decay) / 4096) + trace_increment * input, 2**trace_bits - 1).
    surrogate_shift, surrogate_table: postsynaptic factor h of a spiking layer (§4):
        h = surrogate_table[|v - (vth << 6)| >> surrogate_shift], 0 beyond the table; 1 for a readout.
    error_bits: the error e is signed, saturated to +-(2**(error_bits - 1) - 1) (§5).
    error_shift, error_target: the on-chip error of a readout (§5):
        e = clip(c >> error_shift, -error_target, error_target) - (+error_target if label else -error_target).
    momentum_bits, momentum_shift, product_shift: momentum m, signed saturating (§6):
        m <- sat(m - R(m, momentum_shift) + R(e h x, product_shift)), beta = 1 - 2**-momentum_shift.
    flip_threshold, threshold_shift: flip when W m > theta (strict, §6, §7); BSO: theta = flip_threshold;
        T-BSO: theta = (flip_threshold * isqrt(s[t])) >> threshold_shift.
    second_moment_bits, second_moment_shift, second_moment_product_shift: T-BSO's s[t], unsigned saturating:
        s[t] <- sat(s[t] - R(s[t], second_moment_shift) + R(sum(g*g) // n, second_moment_product_shift)) (§7).
    t_epoch: flips are decided at every t_epoch-th learning step only; momenta update every step (§6).
    rounding: R() is round-half-away ("nearest") or seeded "stochastic" rounding with ``seed`` (§8).
    population: P, binary neurons per class of a population readout (§14): the layer has n_classes * P
        neurons, neuron c P + p being member p of class c; the on-chip error pools each class's currents and
        member p flips at theta_p = theta (p + 1) // P. 1: one neuron per class (the rule without pooling).
    bias_bits, bias_shift: the learnable bias of §15, one signed saturating register b per neuron of
        ``bias_bits`` bits (0: no learned bias), b <- sat(b - e h) every learning step; the neuron adds
        b >> bias_shift to its bias_mant (docs/fixed-point.md §3.4), saturated to the 13-bit register.
    feedback, feedback_seed, feedback_shift: where a hidden learning layer's error comes from (§18).
        "host" (default): delivered by the host (``errors=``), the reference (backpropagation). "random":
        feedback alignment on chip, from ``labels=``: the output layer's on-chip error e (n_classes,) of
        the same step (§5, with this rule's error_shift / error_target) through the fixed random binary
        matrix B (n_hidden, n_classes) of +-1 drawn from feedback_seed (``feedback_matrix_int``), the
        hidden error e_h = clip(R_nearest(B e, feedback_shift), +-error_max), then gated by h (§4) as
        every error. ``population`` is then the output layer's (its error pools each class's P neurons, §14);
        the hidden layer's own thresholds are not staggered. Build such a rule from the readout's with
        ``learning_feedback.feedback_alignment_rule``.
    population_rule, counter_bits, counter_threshold, counter_growth_shift: how the members of a class learn
        (§20). "staggered" (default): per-synapse momenta and the staggered thresholds of §14 (§6, §7).
        "counter": one signed saturating accumulator a of ``counter_bits`` per class and input (in member 0's
        momentum register; the other members' stay 0) integrates the class's summed product,
        a <- sat(a + R(sum_p e h x, product_shift)); when a > theta (a < -theta) the lowest-index member whose
        sign is +1 (-1) flips and theta is subtracted from |a|; at a flip step a is then clipped to
        [-theta, theta]. theta = min(counter_threshold + (counter_threshold * counter >> counter_growth_shift),
        counter_max) (counter_growth_shift 0: theta = counter_threshold). No second moment, no variant.
    error_shape: the output layer's on-chip error (§21). "margin" (default): §5's clipped margin for every
        class. "hinge": a multi-class perceptron error, only the label and its strongest rival r (the
        lowest-index largest scaled class current among the other classes) move: e_label = -A, e_r = +A when
        scaled_label - scaled_r < A, every other error 0 (A = error_target).
    """

    variant: str = "tbso"
    time_steps: int = 4
    trace_decay: int = 2048
    trace_increment: int = 64
    trace_bits: int = 8
    surrogate_shift: int = 6
    surrogate_table: tuple[int, ...] = (8, 4, 2, 1)
    error_bits: int = 8
    error_shift: int = 0
    error_target: int = 32
    momentum_bits: int = 16
    momentum_shift: int = 4
    product_shift: int = 4
    flip_threshold: int = 0
    threshold_shift: int = 0
    second_moment_bits: int = 32
    second_moment_shift: int = 8
    second_moment_product_shift: int = 8
    t_epoch: int = 1
    rounding: str = "nearest"
    seed: int = 0
    population: int = 1
    bias_bits: int = 0
    bias_shift: int = 0
    feedback: str = "host"
    feedback_seed: int = 0
    feedback_shift: int = 0
    population_rule: str = "staggered"
    counter_bits: int = 16
    counter_threshold: int = 0
    counter_growth_shift: int = 0
    error_shape: str = "margin"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"LearningRule.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"LearningRule.rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        if self.population_rule not in POPULATION_RULES:
            raise ValueError(f"LearningRule.population_rule must be one of {POPULATION_RULES}, got "
                             f"{self.population_rule!r}")
        if self.error_shape not in ERROR_SHAPES:
            raise ValueError(f"LearningRule.error_shape must be one of {ERROR_SHAPES}, got {self.error_shape!r}")
        if self.feedback not in FEEDBACKS:
            raise ValueError(f"LearningRule.feedback must be one of {FEEDBACKS}, got {self.feedback!r}")
        try:
            table = tuple(self.surrogate_table)
        except TypeError:
            raise ValueError(f"LearningRule.surrogate_table must be a sequence of integers, got "
                             f"{self.surrogate_table!r}") from None
        object.__setattr__(self, "surrogate_table", table)
        _check_int("time_steps", self.time_steps, 1, 1 << 16)
        _check_int("trace_decay", self.trace_decay, 0, (1 << DECAY_BITS) - 1, "a 12-bit decay register (§3)")
        _check_int("trace_bits", self.trace_bits, 1, 16)
        _check_int("trace_increment", self.trace_increment, 0, self.trace_max, "it must fit the trace width")
        _check_int("surrogate_shift", self.surrogate_shift, 0, SPEC.state_bits)
        if not 1 <= len(table) <= 16:
            raise ValueError(f"LearningRule.surrogate_table needs 1 to 16 entries, got {len(table)}")
        for index, entry in enumerate(table):
            _check_int(f"surrogate_table[{index}]", entry, 0, (1 << SURROGATE_BITS) - 1,
                       f"entries are unsigned {SURROGATE_BITS}-bit (§4)")
        _check_int("error_bits", self.error_bits, 2, 16)
        _check_int("error_shift", self.error_shift, 0, SPEC.state_bits + 8)
        _check_int("error_target", self.error_target, 0, self.error_max // 2,
                   "2 * error_target must fit the error width, so that the on-chip error never saturates (§5)")
        _check_int("momentum_bits", self.momentum_bits, 2, 32)
        _check_int("momentum_shift", self.momentum_shift, 0, 30)
        _check_int("product_shift", self.product_shift, 0, 40)
        _check_int("flip_threshold", self.flip_threshold, 0, (1 << 32) - 1)
        _check_int("threshold_shift", self.threshold_shift, 0, 31)
        _check_int("second_moment_bits", self.second_moment_bits, 1, 48)
        _check_int("second_moment_shift", self.second_moment_shift, 0, 40)
        _check_int("second_moment_product_shift", self.second_moment_product_shift, 0, 62)
        _check_int("t_epoch", self.t_epoch, 1, 1 << 20)
        _check_int("seed", self.seed, 0, HASH_MASK, "seeds are 32-bit words (§8)")
        _check_int("population", self.population, 1, MAX_POPULATION, "neurons per class of the readout (§14)")
        _check_int("bias_bits", self.bias_bits, 0, MAX_BIAS_BITS, "0 turns the learned bias off (§15)")
        if self.bias_bits == 1:
            raise ValueError("LearningRule.bias_bits = 1 leaves no magnitude bit for a signed bias; use 0 (no "
                             f"learned bias) or 2 ... {MAX_BIAS_BITS} (§15)")
        _check_int("bias_shift", self.bias_shift, 0, max(0, self.bias_bits - 1),
                   "the bias's fraction bits must leave room in its register (§15)")
        _check_int("feedback_seed", self.feedback_seed, 0, HASH_MASK, "seeds are 32-bit words (§18)")
        _check_int("feedback_shift", self.feedback_shift, 0, MAX_FEEDBACK_SHIFT, "the projected error's shift (§18)")
        self._check_counter()
        if self.rounding == "stochastic":
            for name in ("momentum_shift", "product_shift", "second_moment_shift", "second_moment_product_shift"):
                if getattr(self, name) > 32:
                    raise ValueError(f"LearningRule.{name} = {getattr(self, name)} > 32: stochastic rounding draws "
                                     "32-bit random words (§8); use a smaller shift or rounding='nearest'")
        if self.variant == "bso" and self.flip_threshold > self.momentum_max:
            raise ValueError(f"LearningRule.flip_threshold = {self.flip_threshold} exceeds the largest momentum "
                             f"{self.momentum_max}: no synapse could ever flip; lower it or widen momentum_bits")

    def _check_counter(self) -> None:
        """The counter rule's registers (§20); its fields are not read by the staggered rule."""
        _check_int("counter_bits", self.counter_bits, 2, 32, "the shared accumulator's width (§20)")
        _check_int("counter_growth_shift", self.counter_growth_shift, 0, 62, "0 keeps the threshold fixed (§20)")
        if not self.shared_counter:
            _check_int("counter_threshold", self.counter_threshold, 0, (1 << 32) - 1)
            return
        _check_int("counter_threshold", self.counter_threshold, 1, self.counter_max,
                   "the accumulator must be able to pass it (§20)")
        if self.feedback_alignment:
            raise ValueError("LearningRule.population_rule = 'counter' is a readout rule (§20); a hidden layer "
                             "learning by feedback alignment (§18) uses population_rule = 'staggered'")

    # --- derived ranges ---
    @property
    def shared_counter(self) -> bool:
        """True for the shared-counter population rule (§20)."""
        return self.population_rule == "counter"

    @property
    def counter_max(self) -> int:
        """The accumulator of the counter rule saturates symmetrically at +-counter_max (§20)."""
        return (1 << (self.counter_bits - 1)) - 1

    @property
    def trace_max(self) -> int:
        return (1 << self.trace_bits) - 1

    @property
    def error_max(self) -> int:
        """Errors saturate symmetrically at +-error_max (§5)."""
        return (1 << (self.error_bits - 1)) - 1

    @property
    def momentum_max(self) -> int:
        """Momenta saturate symmetrically at +-momentum_max (§6)."""
        return (1 << (self.momentum_bits - 1)) - 1

    @property
    def second_moment_max(self) -> int:
        return (1 << self.second_moment_bits) - 1

    @property
    def bias_max(self) -> int:
        """Learned biases saturate symmetrically at +-bias_max (§15); 0 without a learned bias."""
        return (1 << (self.bias_bits - 1)) - 1 if self.bias_bits else 0

    @property
    def member_population(self) -> int:
        """P of the learning layer's own staggered thresholds (§14): ``population``, except 1 for a feedback-
        alignment rule, whose population is the output layer's (§18)."""
        return 1 if self.feedback_alignment else self.population

    @property
    def feedback_alignment(self) -> bool:
        """True when a hidden layer's error comes from the on-chip output error through B (§18)."""
        return self.feedback == "random"

    @property
    def learns_bias(self) -> bool:
        return self.bias_bits > 0

    @property
    def bits_per_bias(self) -> int:
        """Learning state per neuron for its bias: the bias register (§15); 0 without a learned bias."""
        return self.bias_bits

    @property
    def surrogate_max(self) -> int:
        return max(self.surrogate_table)

    @property
    def bits_per_synapse(self) -> int:
        """Learning state per synapse: the 1-bit weight plus the momentum (§10). The traces (per input), the
        second moments (per layer and time step), the surrogate and the learned bias (per neuron) are not per
        synapse; a population readout (§14) has P such synapses per class and input. The counter rule (§20) keeps
        P 1-bit synapses and one counter_bits accumulator per class and input: ceil((P + counter_bits) / P)."""
        if self.shared_counter:
            population = self.population
            return -(-(population * SPEC.binary_weight_bits + self.counter_bits) // population)
        return SPEC.binary_weight_bits + self.momentum_bits

    def product_bound(self, n_in: int, n_out: int, spiking: bool) -> int:
        """Largest |sum_ij (e h x)**2| of a layer (n_out, n_in): the implementations require it below 2**63
        (§7); ValueError from :func:`~.learner.check_learning_layer` otherwise."""
        h = self.surrogate_max if spiking else 1
        return (self.error_max * h * self.trace_max) ** 2 * n_in * n_out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["surrogate_table"] = list(self.surrogate_table)
        data["version"] = RULE_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearningRule:
        data = dict(data)
        version = data.pop("version", RULE_VERSION)
        if version != RULE_VERSION:
            raise ValueError(f"learning rule version {version} is not supported (this bso-deploy reads {RULE_VERSION})")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown LearningRule fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_float(cls, variant: str = "tbso", *, momentum: float = 0.9375, threshold: float = 0.0,
                   variance_decay: float = 0.99609375, trace_scale: float = 64, error_scale: float = 1.0,
                   surrogate_scale: float = 1.0, spiking: bool = False, input_max: int = 1,
                   error_bound: int | None = None, threshold_bits: int = 12, precision_bits: int = 0,
                   **integer_fields: Any) -> LearningRule:
        """The integer rule for float BSO / T-BSO hyperparameters (docs/onchip-learning.md §9).

        momentum -> momentum_shift s (:func:`~.learning_float.decay_shift`: beta = 1 - 2**-s, the nearest
        such); variance_decay -> second_moment_shift s2 likewise. The scales of the three factors (trace_scale:
        integer trace units per float trace unit, error_scale per float error unit, surrogate_scale per
        unit of the float surrogate) fix the momentum scale M (:meth:`momentum_scale`). Unless given,
        product_shift is the smallest that keeps the largest product g_max = error_bound * h_max * x_max
        (x_max: :func:`~.learning_float.trace_reach` for inputs up to ``input_max``; h_max: the table's
        largest entry if ``spiking``, else 1; error_bound: 2 error_target, else error_max) within the
        momentum's range after the EMA's gain 2**s (:func:`~.learning_float.range_shift`), less
        ``precision_bits`` (finer momenta; a momentum then saturates only if its gradient stays near the
        worst case), and second_moment_product_shift p2 the smallest that keeps g_max**2 2**s2 within the
        second moment's range. BSO: flip_threshold = round(threshold M). T-BSO:
        :func:`~.learning_float.tbso_flip_threshold` with ``threshold_bits``. Other integer fields
        (trace_*, error_*, momentum_bits, rounding, seed, t_epoch, ...) pass through.
        """
        check_float_hyperparameters(momentum, variance_decay, threshold, trace_scale, error_scale, surrogate_scale)
        shift, shift2 = decay_shift(momentum), decay_shift(variance_decay)
        draft = cls(**{"variant": variant, "momentum_shift": shift, "second_moment_shift": shift2,
                       **{k: v for k, v in integer_fields.items() if k not in ("flip_threshold", "threshold_shift")}})
        x_max = trace_reach(draft.trace_max, draft.trace_increment, draft.trace_decay, input_max, DECAY_BITS)
        if error_bound is None:
            error_bound = 2 * draft.error_target if draft.error_target else draft.error_max
        g_max = max(1, error_bound * (draft.surrogate_max if spiking else 1) * x_max)
        product_shift = integer_fields.get("product_shift", max(0, range_shift(g_max, shift, draft.momentum_max)
                                                                - precision_bits))
        p2 = integer_fields.get("second_moment_product_shift",
                                max(0, range_shift(g_max ** 2, shift2, draft.second_moment_max)))
        fields_: dict[str, Any] = {**integer_fields, "variant": variant, "momentum_shift": shift,
                                   "second_moment_shift": shift2, "product_shift": product_shift,
                                   "second_moment_product_shift": p2, "threshold_shift": 0}
        if variant == "tbso":
            fields_["flip_threshold"], fields_["threshold_shift"] = tbso_flip_threshold(
                threshold, shift, product_shift, shift2, p2, threshold_bits)
        else:
            scale = momentum_scale(trace_scale, error_scale, surrogate_scale, shift, product_shift)
            fields_["flip_threshold"] = round(threshold * scale)
        return cls(**fields_)

    def momentum_scale(self, trace_scale: float, error_scale: float, surrogate_scale: float = 1.0) -> float:
        """M: integer momentum units per float momentum unit, for the given factor scales (§9,
        :func:`~.learning_float.momentum_scale`)."""
        return momentum_scale(trace_scale, error_scale, surrogate_scale, self.momentum_shift, self.product_shift)
