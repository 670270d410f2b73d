"""The output layer's part of the NumPy on-chip rule (docs/onchip-learning.md §5, §14, §15): the error register,
the on-chip readout error (pooled over a population readout), the population's staggered flip thresholds and
the learned bias's mantissa. ``hardware/learning.py`` (the rule's step, the ``"sim"`` learner) uses them and
re-exports them; the torch rule and the Lava process write their own.
"""

from __future__ import annotations

import numpy as np

from .learning_rule import LearningRule
from .spec import SPEC

__all__ = ["hinge_error_int", "learned_bias_mant_int", "member_thresholds_int", "readout_error_int",
           "saturate_error_int"]


def saturate_error_int(error: np.ndarray, rule: LearningRule) -> np.ndarray:
    """Errors are signed and saturate at +-(2**(error_bits - 1) - 1) (§5)."""
    return np.clip(np.asarray(error, dtype=np.int64), -rule.error_max, rule.error_max)


def readout_error_int(current: np.ndarray, label: int, rule: LearningRule) -> np.ndarray:
    """On-chip error of the output layer (§5, §14): with c the readout current of this step (u + bias(t), what
    v gains this step), P = population, C_k = sum_p c_(k P + p) the pooled current of class k and target +A
    for the label, -A for the other classes (A = error_target):
    ``e_k = clip(floor(C_k / (P 2**error_shift)), -A, A) - target_k``, delivered to each of class k's P
    neurons (P = 1: ``clip(c >> error_shift, -A, A) - target``). e = dL/dc of L = 1/2 (clip - target)^2:
    0 once the label's current reaches A and the others' fall to -A (a margin); |e| <= 2 A."""
    population = rule.population
    pooled = np.asarray(current, dtype=np.int64).reshape(-1, population).sum(axis=1)
    scaled = np.floor_divide(pooled, population << rule.error_shift)
    if rule.error_shape == "hinge":
        return np.repeat(saturate_error_int(hinge_error_int(scaled, label, rule.error_target), rule), population)
    target = np.full(scaled.shape, -rule.error_target, dtype=np.int64)
    target[label] = rule.error_target
    class_error = saturate_error_int(np.clip(scaled, -rule.error_target, rule.error_target) - target, rule)
    return np.repeat(class_error, population)


def hinge_error_int(scaled: np.ndarray, label: int, margin: int) -> np.ndarray:
    """The multi-class hinge (perceptron) error of §21 from the scaled class currents ``scaled`` (C,): the rival
    r is the lowest-index class of largest ``scaled`` among the classes other than the label; when
    ``scaled[label] - scaled[r] < margin`` (strict: a difference of exactly A is met), ``e_label = -A`` and
    ``e_r = +A`` (A = margin), every other entry 0. The subgradient, times A, of
    ``max(0, A - (scaled_label - scaled_r))``."""
    scaled = np.asarray(scaled, dtype=np.int64)
    others = np.where(np.arange(scaled.size) == label, np.iinfo(np.int64).min, scaled)
    rival = int(np.argmax(others))
    error = np.zeros(scaled.shape, dtype=np.int64)
    if scaled[label] - scaled[rival] < margin:
        error[label], error[rival] = -margin, margin
    return error


def member_thresholds_int(theta: int, n_out: int, rule: LearningRule) -> np.ndarray:
    """The flip thresholds (n_out, 1) of a population's members (§14): member p = i mod P of every class flips
    at ``theta_p = (theta (p + 1)) // P``, floor (theta here before T-BSO's ``>> threshold_shift``); P = 1:
    theta."""
    population = rule.member_population  # 1 for a hidden layer learning by feedback alignment (§18)
    members = np.arange(n_out, dtype=np.int64) % population + 1
    return (np.int64(theta) * members // population)[:, None]


def learned_bias_mant_int(bias_mant: np.ndarray, bias: np.ndarray, rule: LearningRule) -> np.ndarray:
    """The bias_mant a learning layer's neurons run with (§15): ``clip(bias_mant + (b >> bias_shift),
    -4096, 4095)`` (arithmetic shift, the 13-bit register of docs/fixed-point.md §3.4)."""
    total = np.asarray(bias_mant, dtype=np.int64) + (np.asarray(bias, dtype=np.int64) >> rule.bias_shift)
    return np.clip(total, SPEC.bias_mant_min, SPEC.bias_mant_max)
