"""The float BSO / T-BSO hyperparameters in the integer rule's terms (docs/onchip-learning.md §9).

Pure functions of numbers, one per step of the mapping; :meth:`LearningRule.from_float
<bso_deploy.hardware.learning_rule.LearningRule.from_float>` assembles them into a rule. No integer arithmetic of
the rule lives here.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "check_float_hyperparameters",
    "decay_shift",
    "momentum_scale",
    "range_shift",
    "tbso_flip_threshold",
    "trace_reach",
]


def check_float_hyperparameters(momentum: float, variance_decay: float, threshold: float, trace_scale: float,
                                error_scale: float, surrogate_scale: float) -> None:
    """ValueError unless momentum and variance_decay lie in [0, 1), threshold is finite and >= 0, and the
    three factor scales are > 0."""
    for name, value in (("momentum", momentum), ("variance_decay", variance_decay)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold < math.inf:
        raise ValueError(f"threshold must be a finite float >= 0, got {threshold!r}")
    if not (error_scale > 0 and trace_scale > 0 and surrogate_scale > 0):
        raise ValueError("trace_scale, error_scale and surrogate_scale must be > 0")


def decay_shift(decay: float) -> int:
    """s = max(0, round(-log2(1 - decay))): the EMA factor 1 - 2**-s nearest to ``decay`` in [0, 1)."""
    return max(0, round(-math.log2(1.0 - decay)))


def trace_reach(trace_max: int, trace_increment: int, trace_decay: int, input_max: int, decay_bits: int) -> int:
    """x_max, the largest trace for inputs up to ``input_max``: min(trace_max, ceil(trace_increment input_max
    2**decay_bits / trace_decay)), the fixed point of the trace's update (§3); trace_max without a decay."""
    if trace_decay == 0:
        return trace_max
    return min(trace_max, math.ceil(trace_increment * input_max * (1 << decay_bits) / trace_decay))


def range_shift(value_max: int, gain_shift: int, limit: int) -> int:
    """ceil(log2(value_max 2**gain_shift / limit)): the right shift after which ``value_max``, amplified by an
    EMA of gain 2**gain_shift, stays within ``limit`` (negative when it already fits with room)."""
    return math.ceil(math.log2(value_max * 2.0 ** gain_shift / limit))


def tbso_flip_threshold(threshold: float, momentum_shift: int, product_shift: int, second_moment_shift: int,
                        second_moment_product_shift: int, threshold_bits: int) -> tuple[int, int]:
    """(flip_threshold, threshold_shift) of T-BSO for the float ``threshold``: W m / sqrt(s[t]) > threshold is
    scale free, so theta / 2**threshold_shift = threshold 2**(s - product_shift + (p2 - s2) / 2), with the
    shift that gives flip_threshold ``threshold_bits`` significant bits (within [0, 31]); (0, 0) for 0."""
    factor = threshold * 2.0 ** (momentum_shift - product_shift + (second_moment_product_shift
                                                                   - second_moment_shift) / 2)
    if factor <= 0:
        return 0, 0
    exponent = max(0, min(31, threshold_bits - 1 - math.floor(math.log2(factor))))
    return round(factor * 2.0 ** exponent), exponent


def momentum_scale(trace_scale: float, error_scale: float, surrogate_scale: float, momentum_shift: int,
                   product_shift: int) -> float:
    """M = G 2**(momentum_shift - product_shift), G = trace_scale error_scale surrogate_scale: integer momentum
    units per float momentum unit (m_int ~ M m_float); BSO's flip_threshold is round(threshold M)."""
    return trace_scale * error_scale * surrogate_scale * 2.0 ** (momentum_shift - product_shift)
