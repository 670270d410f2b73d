"""Feedback alignment on chip, NumPy (docs/onchip-learning.md §18): the fixed random binary feedback matrix B,
the hidden layer's projected error and :func:`feedback_alignment_rule`, which builds a hidden layer's
:class:`LearningRule` from the readout's.

A hidden learning layer with ``rule.feedback == "random"`` learns from ``labels`` alone: at each of its
learning steps the output layer's on-chip error of that step (§5, ``readout_error_int``) reaches every hidden
neuron through B, with no host backpropagation. ``hardware/learning.py`` (the ``"sim"`` learner) uses these
functions; the torch rule (``hardware/torch_learning.py``) and the Lava side (``hardware/lava/
learning_arithmetic.py``) write their own.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .learning_rule import HASH_MASK, HASH_MULTIPLIERS, MAX_FEEDBACK_SHIFT, LearningRule
from .spec import SPEC

__all__ = ["feedback_alignment_rule", "feedback_error_int", "feedback_matrix_int", "feedback_shift_for",
           "hash32_int", "surrogate_shift_for"]


def hash32_int(x: np.ndarray) -> np.ndarray:
    """The 32-bit mixing hash of §8 on int64 words in [0, 2**32):
    ``x ^= x >> 16; x = (x * 0x7feb352d) & M; x ^= x >> 15; x = (x * 0x1b873593) & M; x ^= x >> 16``
    with M = 2**32 - 1 (both multipliers < 2**31, so every product is exact in int64). Used by the rounding's
    random words (§8, ``learning.random_words_int``) and by B (§18)."""
    x = np.asarray(x, dtype=np.int64) & HASH_MASK
    x = x ^ (x >> 16)
    x = (x * HASH_MULTIPLIERS[0]) & HASH_MASK
    x = x ^ (x >> 15)
    x = (x * HASH_MULTIPLIERS[1]) & HASH_MASK
    return x ^ (x >> 16)


def feedback_matrix_int(n_hidden: int, n_classes: int, seed: int) -> np.ndarray:
    """B (n_hidden, n_classes) int64 of +-1 (§18): with ``key = hash32(seed)``,
    ``B_ik = +1 if hash32(key ^ (i n_classes + k)) >> 31 else -1`` (the top bit of the §8 hash of the
    row-major index). Fixed for the whole stream: a function of the seed, never learned."""
    if n_hidden * n_classes > HASH_MASK:
        raise ValueError(f"a feedback matrix of {n_hidden} x {n_classes} needs more than 2**32 indices (§18)")
    key = int(hash32_int(np.int64(seed & HASH_MASK)))
    index = np.arange(n_hidden * n_classes, dtype=np.int64)
    bits = hash32_int(key ^ index) >> 31
    return (2 * bits - 1).reshape(n_hidden, n_classes)


def feedback_error_int(class_error: np.ndarray, matrix: np.ndarray, rule: LearningRule) -> np.ndarray:
    """The hidden layer's projected error (§18): ``y = B e`` (exact int64; |y| <= n_classes 2 error_target),
    ``e_h = clip(R(y, feedback_shift), -error_max, error_max)`` with R half away from zero,
    ``sign(y) ((|y| + 2**(s-1)) >> s)`` (s = 0: y). ``class_error`` (n_classes,) is the output layer's
    on-chip error of this step (§5); the learning step then gates e_h by the hidden neuron's h (§4)."""
    y = np.asarray(matrix, dtype=np.int64) @ np.asarray(class_error, dtype=np.int64)
    shift = rule.feedback_shift
    if shift:
        y = np.sign(y) * ((np.abs(y) + (1 << (shift - 1))) >> shift)
    return np.clip(y, -rule.error_max, rule.error_max)


def feedback_shift_for(n_classes: int, rule: LearningRule) -> int:
    """The smallest feedback_shift for which the largest projection ``n_classes 2 error_target``, rounded,
    fits the error register (so that e_h saturates only beyond the worst case, §18)."""
    largest = n_classes * 2 * rule.error_target
    shift = 0
    while shift < MAX_FEEDBACK_SHIFT and ((largest + ((1 << shift) >> 1)) >> shift) > rule.error_max:
        shift += 1
    return shift


def surrogate_shift_for(vth: Any, table_entries: int) -> int:
    """A surrogate_shift (§4) whose table of ``table_entries`` entries spans distances up to the median
    threshold ``vth << 6`` (one float threshold unit, the width of the float sigmoid surrogate): the smallest
    s with ``table_entries 2**s >= median(vth) 2**6``."""
    threshold = max(1, int(np.median(np.asarray(vth, dtype=np.int64))) << SPEC.state_shift)
    return max(0, math.ceil(math.log2(threshold / table_entries)))


def feedback_alignment_rule(readout_rule: LearningRule, n_classes: int, *, vth: Any = None, threshold: float = 1.0,
                            feedback_seed: int = 0, feedback_shift: int | None = None, precision_bits: int = 4,
                            error_scale: float = 1.0) -> LearningRule:
    """The rule of a hidden binary spiking layer that learns by feedback alignment (§18) next to a readout whose
    rule is ``readout_rule``: the readout's error (error_bits, error_shift, error_target, and its population P:
    the error pools each class's P output neurons, §14), variant, time_steps,
    trace, momentum width, decays (momentum = 1 - 2**-momentum_shift, variance_decay likewise), rounding,
    seed and t_epoch; ``feedback="random"`` with ``feedback_seed`` and ``feedback_shift`` (default
    :func:`feedback_shift_for`); no learned bias; the surrogate_shift from the hidden
    layer's thresholds ``vth`` (:func:`surrogate_shift_for`; None keeps the readout rule's); product_shift
    and the T-BSO threshold by ``LearningRule.from_float`` (spiking, error bound error_max, ``threshold``,
    ``precision_bits``; for BSO, ``error_scale`` integer error units per float unit).

    Use: ``SimLearner(fx_net, feedback_alignment_rule(rule, n_classes, vth=fx_net.layers[k].vth), layer=k)``
    then ``run(inputs, labels=labels)``: layer k learns from the on-chip output error, the readout is frozen."""
    if not isinstance(readout_rule, LearningRule):
        raise TypeError(f"readout_rule must be a LearningRule, not {type(readout_rule).__name__}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    surrogate_shift = (readout_rule.surrogate_shift if vth is None
                       else min(SPEC.state_bits, surrogate_shift_for(vth, len(readout_rule.surrogate_table))))
    shared = {name: getattr(readout_rule, name) for name in (
        "time_steps", "trace_decay", "trace_increment", "trace_bits", "surrogate_table", "error_bits", "error_shift",
        "error_target", "momentum_bits", "second_moment_bits", "t_epoch", "rounding", "seed", "population")}
    draft = LearningRule(**shared, feedback="random", feedback_seed=feedback_seed)
    shift = feedback_shift_for(n_classes, draft) if feedback_shift is None else feedback_shift
    return LearningRule.from_float(
        readout_rule.variant, momentum=1 - 2.0 ** -readout_rule.momentum_shift, threshold=threshold,
        variance_decay=1 - 2.0 ** -readout_rule.second_moment_shift, trace_scale=readout_rule.trace_increment,
        error_scale=error_scale, spiking=True, error_bound=draft.error_max, precision_bits=precision_bits,
        surrogate_shift=surrogate_shift, feedback="random", feedback_seed=feedback_seed, feedback_shift=shift,
        **shared)
