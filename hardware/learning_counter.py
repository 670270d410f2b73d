"""The shared-counter population rule of docs/onchip-learning.md §20, NumPy: one integer accumulator per class
and input integrates the gradient, and each time it passes the threshold one member of the class's population
flips, so that the class weight ``sum_p W_(kP+p, j)`` does quantized gradient descent in steps of 2.
``hardware/learning.py`` (the rule's step, the ``"sim"`` learner) calls :func:`counter_step_int`; the torch rule
and the Lava process write their own.
"""

from __future__ import annotations

import numpy as np

from .learning_rule import LearningRule

__all__ = ["class_products_int", "counter_flips_int", "counter_step_int", "counter_threshold_int"]


def counter_threshold_int(counter: int, rule: LearningRule) -> int:
    """theta at learning step ``counter`` (the steps taken before this one, §20):
    ``min(counter_threshold + ((counter_threshold * counter) >> counter_growth_shift), counter_max)``;
    ``counter_growth_shift`` 0: ``counter_threshold``. The step size of the class weight thus falls as
    1 / (1 + counter / 2**counter_growth_shift), a decaying learning rate in integer steps."""
    theta = rule.counter_threshold
    if rule.counter_growth_shift:
        theta += (rule.counter_threshold * int(counter)) >> rule.counter_growth_shift
    return min(theta, rule.counter_max)


def counter_flips_int(weight: np.ndarray, accumulator: np.ndarray, theta: int,
                      population: int) -> tuple[np.ndarray, np.ndarray]:
    """The flips of one decision (§20) and the accumulators after it. ``weight`` (C P, n_in) signs,
    ``accumulator`` (C, n_in). Per class k and input j:

        down = a > theta and some member has W = +1:  the lowest-index such member p flips to -1, a -= theta
        up   = a < -theta and some member has W = -1: the lowest-index such member p flips to +1, a += theta
        a    = clip(a, -theta, theta)        (what the saturated class weight cannot take is dropped)

    Returns (flips (C P, n_in) bool, accumulator (C, n_in))."""
    members = np.asarray(weight, dtype=np.int64).reshape(-1, population, weight.shape[-1])  # (C, P, n_in)
    positive, negative = members > 0, members < 0
    down = (accumulator > theta) & positive.any(axis=1)
    up = (accumulator < -theta) & negative.any(axis=1)
    index = np.arange(population)[None, :, None]
    first_positive = index == np.argmax(positive, axis=1)[:, None, :]
    first_negative = index == np.argmax(negative, axis=1)[:, None, :]
    flips = (first_positive & down[:, None, :]) | (first_negative & up[:, None, :])
    accumulator = accumulator - theta * down.astype(np.int64) + theta * up.astype(np.int64)
    return flips.reshape(weight.shape), np.clip(accumulator, -theta, theta)


def class_products_int(post: np.ndarray, trace: np.ndarray, population: int) -> np.ndarray:
    """The counter rule's gradient before rounding (§20): ``g_kj = sum_p post_(kP+p) x_j``, (C, n_in) exact,
    from ``post`` = e h (C P,) and the trace (n_in,) after this step."""
    grouped = np.asarray(post, dtype=np.int64).reshape(-1, population).sum(axis=1)
    return grouped[:, None] * np.asarray(trace, dtype=np.int64)[None, :]


def counter_step_int(weight: np.ndarray, momentum: np.ndarray, step: np.ndarray, counter: int,
                     rule: LearningRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The counter rule's step (§20) for signs ``weight`` (C P, n_in), the momentum registers ``momentum``
    (C P, n_in) (class k's accumulator a_k in row k P, the other rows 0), the rounded gradient ``step`` =
    R(class_products_int, product_shift) (C, n_in) (R of §8; stochastic: the word of synapse (kP, j), stream
    1) and ``counter`` the learning steps before this one:

        a_kj = sat( a_kj + step_kj )                          +-counter_max
        at a flip step ((counter + 1) % t_epoch == 0): counter_flips_int with theta = counter_threshold_int

    Returns (new weight int8, new momentum registers, flips (C P, n_in) bool)."""
    population = rule.population
    accumulator = np.asarray(momentum, dtype=np.int64)[::population]
    accumulator = np.clip(accumulator + np.asarray(step, dtype=np.int64), -rule.counter_max, rule.counter_max)
    flips = np.zeros(weight.shape, dtype=bool)
    if (int(counter) + 1) % rule.t_epoch == 0:
        flips, accumulator = counter_flips_int(weight, accumulator, counter_threshold_int(counter, rule), population)
    registers = np.zeros(weight.shape, dtype=np.int64)
    registers[::population] = accumulator
    new_weight = np.where(flips, -np.asarray(weight), np.asarray(weight)).astype(np.int8)
    return new_weight, registers, flips
