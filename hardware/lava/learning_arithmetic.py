"""The integer arithmetic of the Lava learning processes (``hardware/lava/learning``), written from the spec.

This module is the Lava side's own reading of docs/onchip-learning.md §3 - §8: the presynaptic trace, the
postsynaptic factor, the error, the momenta and flips of BSO, T-BSO's second moments and the rule's two
roundings with their counter-based random words. It shares with the NumPy rule (``hardware/learning.py``)
and the torch rule only the rule's parameters (:class:`LearningRule`, data) and the hash constants of §8;
``tests/hardware/test_lava_imports.py`` checks that no module of ``hardware/lava`` imports their step
functions, so the learning parity tests compare independent arithmetic.

One call per learning step and layer, vectorized over the layer's synapses, int64 (the random words as
uint64 while they are mixed, masked to 32 bits after every product: nothing relies on machine overflow).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from bso_deploy.hardware.learning_rule import HASH_GOLDEN, HASH_MASK, HASH_MULTIPLIERS, LearningRule
from bso_deploy.hardware.spec import SPEC

__all__ = [
    "LearningUpdate",
    "counter_update",
    "feedback_error",
    "feedback_matrix",
    "hash32",
    "learned_bias_mant",
    "learning_update",
    "member_thresholds",
    "random_words",
    "readout_error",
    "round_shift",
    "saturate_error",
    "surrogate",
    "trace_update",
]

_WORDS_PER_SYNAPSE = 4  # streams 0 ... 3 of §8: momentum decay, product, second-moment decay and input
_MASK = np.uint64(HASH_MASK)


def trace_update(trace: np.ndarray, pre: np.ndarray, rule: LearningRule) -> np.ndarray:
    """The presynaptic trace (§3): ``x' = min(trunc(x (4096 - trace_decay) / 4096) + trace_increment pre,
    2**trace_bits - 1)``. x and pre (spikes or graded input) are never negative, so the truncation is a floor
    division."""
    decayed = np.asarray(trace, dtype=np.int64) * (SPEC.decay_unity - rule.trace_decay) // SPEC.decay_unity
    return np.minimum(decayed + rule.trace_increment * np.asarray(pre, dtype=np.int64), rule.trace_max)


def surrogate(v: np.ndarray, vth: np.ndarray | None, rule: LearningRule) -> np.ndarray:
    """The postsynaptic factor h (§4) from the voltage before reset: entry ``|v - vth 2**6| >> surrogate_shift``
    of ``surrogate_table``, 0 for a distance past the table's end; 1 everywhere for a readout (vth None)."""
    v = np.asarray(v, dtype=np.int64)
    if vth is None:
        return np.ones(v.shape, dtype=np.int64)
    distance = np.abs(v - np.asarray(vth, dtype=np.int64) * (1 << SPEC.state_shift)) >> rule.surrogate_shift
    table = np.asarray(rule.surrogate_table, dtype=np.int64)
    inside = distance < table.size
    return np.where(inside, table[np.where(inside, distance, 0)], 0)


def saturate_error(error: np.ndarray, rule: LearningRule) -> np.ndarray:
    """The error register (§5): signed, saturated at +-(2**(error_bits - 1) - 1)."""
    return np.clip(np.asarray(error, dtype=np.int64), -rule.error_max, rule.error_max)


def readout_error(current: np.ndarray, label: int, rule: LearningRule) -> np.ndarray:
    """The output layer's on-chip error (§5, §14) from its current c = u + bias(t) (n,) and the label: with
    A = error_target and P = population, class k's pooled current C_k = c_(k P) + ... + c_(k P + P - 1) and
    ``e_k = clip(floor(C_k / (P 2**error_shift)), -A, A) - (A if k == label else -A)``, sent to each of the
    class's P neurons."""
    population = rule.population
    pooled = np.add.reduceat(np.asarray(current, dtype=np.int64), np.arange(0, len(current), population))
    scaled = np.floor_divide(pooled, population * 2 ** rule.error_shift)
    if rule.error_shape == "hinge":
        return np.repeat(hinge_error(scaled, int(label), rule.error_target), population)
    target = np.where(np.arange(scaled.shape[-1]) == int(label), rule.error_target, -rule.error_target)
    class_error = saturate_error(np.clip(scaled, -rule.error_target, rule.error_target) - target, rule)
    return np.repeat(class_error, population)


def hinge_error(scaled: np.ndarray, label: int, margin: int) -> np.ndarray:
    """The hinge error (§21), class by class: the rival is the first non-label class whose scaled current no
    later one exceeds; label and rival get -A and +A when scaled[label] - scaled[rival] < A (A = margin)."""
    rival = -1
    for k, value in enumerate(scaled.tolist()):
        if k != label and (rival < 0 or value > scaled[rival]):
            rival = k
    error = np.zeros(len(scaled), dtype=np.int64)
    if int(scaled[label]) - int(scaled[rival]) < margin:
        error[label], error[rival] = -margin, margin
    return error


def member_thresholds(theta: int, n_out: int, rule: LearningRule) -> np.ndarray:
    """The flip threshold of every neuron (n_out, 1) of a population readout (§14): neuron i is member
    p = i mod P of its class and flips above floor(theta (p + 1) / P)."""
    population = 1 if rule.feedback == "random" else rule.population  # §18: then P is the output layer's
    members = np.tile(np.arange(1, population + 1, dtype=np.int64), n_out // population)
    return np.floor_divide(int(theta) * members, population).reshape(n_out, 1)


def learned_bias_mant(bias_mant: np.ndarray, bias: np.ndarray, rule: LearningRule) -> np.ndarray:
    """The bias_mant register a learning layer's neuron runs with (§15): the deployed bias_mant plus the learned
    bias's integer part floor(b / 2**bias_shift), saturated to the 13-bit register of docs/fixed-point.md §3.4."""
    integer_part = np.floor_divide(np.asarray(bias, dtype=np.int64), 2 ** rule.bias_shift)
    return np.clip(np.asarray(bias_mant, dtype=np.int64) + integer_part, SPEC.bias_mant_min, SPEC.bias_mant_max)


def hash32(x: np.ndarray) -> np.ndarray:
    """The 32-bit mixing hash of §8 on words in [0, 2**32), as uint64:
    ``x ^= x >> 16; x = x * 0x7feb352d mod 2**32; x ^= x >> 15; x = x * 0x1b873593 mod 2**32; x ^= x >> 16``
    (a 32-bit word times a multiplier below 2**31 stays below 2**63)."""
    x = np.asarray(x, dtype=np.uint64) & _MASK
    first, second = (np.uint64(m) for m in HASH_MULTIPLIERS)
    x = x ^ (x >> np.uint64(16))
    x = (x * first) & _MASK
    x = x ^ (x >> np.uint64(15))
    x = (x * second) & _MASK
    return x ^ (x >> np.uint64(16))


def random_words(seed: int, counter: int, size: int, stream: int) -> np.ndarray:
    """The random words of learning step ``counter`` (the steps taken before it, §2) for indices 0 ... size - 1
    of ``stream`` (§8): ``key = hash32((seed + counter * 0x9e3779b9) mod 2**32)``, word(i) = ``hash32(key xor
    (4 i + stream))``; int64 in [0, 2**32)."""
    key = hash32(np.uint64((int(seed) + int(counter) * HASH_GOLDEN) & HASH_MASK))
    index = np.arange(size, dtype=np.uint64) * np.uint64(_WORDS_PER_SYNAPSE) + np.uint64(stream)
    return hash32(key ^ index).astype(np.int64)


def round_shift(y: np.ndarray, shift: int, rounding: str, words: np.ndarray | None = None) -> np.ndarray:
    """R(y, k), the rule's rounding of y / 2**k (§8). k = 0: y. ``"nearest"``: half away from zero, the
    magnitude rounded half up and the sign put back. ``"stochastic"``: the floor ``y >> k`` plus one where
    the k dropped bits of y exceed the k low bits of the random word (``words``, y's shape)."""
    y = np.asarray(y, dtype=np.int64)
    if shift == 0:
        return y
    if rounding == "nearest":
        magnitude = (np.abs(y) + (1 << (shift - 1))) >> shift
        return np.where(y < 0, -magnitude, magnitude)
    low = (1 << shift) - 1
    return (y >> shift) + ((y & low) > (np.asarray(words, dtype=np.int64) & low))


def feedback_matrix(n_hidden: int, n_classes: int, seed: int) -> np.ndarray:
    """Feedback alignment's fixed matrix B (n_hidden, n_classes) of -1/+1 (§18): entry (i, k) is +1 exactly when
    bit 31 of ``hash32(hash32(seed) xor (i n_classes + k))`` is set; int64."""
    key = hash32(np.uint64(int(seed) & HASH_MASK))
    index = np.arange(n_hidden * n_classes, dtype=np.uint64)
    top = (hash32(key ^ index) >> np.uint64(31)).astype(np.int64)
    return np.where(top == 1, 1, -1).reshape(n_hidden, n_classes).astype(np.int64)


def feedback_error(class_error: np.ndarray, matrix: np.ndarray, rule: LearningRule) -> np.ndarray:
    """A hidden layer's error under feedback alignment (§18): the output layer's class errors e (n_classes,)
    projected, ``y_i = sum_k B_ik e_k``, divided by 2**feedback_shift with half away from zero (the magnitude
    rounded half up, the sign put back), then saturated as every error (§5)."""
    y = np.einsum("ik,k->i", np.asarray(matrix, dtype=np.int64), np.asarray(class_error, dtype=np.int64))
    shift = rule.feedback_shift
    if shift:
        magnitude = (np.abs(y) + (1 << (shift - 1))) >> shift
        y = np.where(y < 0, -magnitude, magnitude)
    return saturate_error(y, rule)


class LearningUpdate(NamedTuple):
    """A layer's learning state after one step: signs (n_out, n_in) -1/+1, momentum (n_out, n_in), trace
    (n_in,), second_moment (T,), counter; what the step saw: flips (n_out, n_in) bool, surrogate h (n_out,);
    and the learned biases (n_out,) (§15)."""

    signs: np.ndarray
    momentum: np.ndarray
    trace: np.ndarray
    second_moment: np.ndarray
    counter: int
    flips: np.ndarray
    surrogate: np.ndarray
    bias: np.ndarray


def learning_update(*, signs: np.ndarray, momentum: np.ndarray, trace: np.ndarray, second_moment: np.ndarray,
                    counter: int, pre: np.ndarray, v: np.ndarray, vth: np.ndarray | None, error: np.ndarray,
                    t: int, rule: LearningRule, bias: np.ndarray | None = None) -> LearningUpdate:
    """One learning step of a layer (docs/onchip-learning.md §3 - §8) from its delivered input ``pre`` (n_in,),
    the voltage before reset v (n_out,), the thresholds vth (None: a readout) and the error (n_out,), at
    time-step index t of the learning window; R is :func:`round_shift` with the words of step ``counter``::

        x' = trace_update(x, pre);  p_i = sat_e(e_i) h_i;  g_ij = p_i x'_j                      §3 - §6
        m' = sat_m(m - R(m, momentum_shift) + R(g, product_shift))                               §6
        BSO: theta = flip_threshold
        T-BSO: s[t] = sat_s(s[t] - R(s[t], s2) + R((sum p^2 sum x'^2) // (n_out n_in), p2));
               theta = (flip_threshold isqrt(s[t])) >> threshold_shift                          §7
        population (§14): neuron i flips above theta_i = floor(theta (i mod P + 1) / P) (T-BSO: before the shift)
        flip = W m' > theta_i where (counter + 1) % t_epoch == 0, else none;  W <- -W where flip;
        BSO: m' <- 0 where flip;  counter + 1;  learned bias (§15): b' = sat_b(b - p)

    Random streams (§8): 0 the momentum decay and 1 the product (word i = the synapse's row-major index),
    2 and 3 (word 0) the decay and the input of s[t]. Inputs are not modified."""
    signs = np.asarray(signs, dtype=np.int64)
    n_out, n_in = signs.shape
    stochastic = rule.rounding == "stochastic"

    def rounded(y: np.ndarray, shift: int, stream: int) -> np.ndarray:
        words = random_words(rule.seed, counter, y.size, stream).reshape(y.shape) if stochastic else None
        return round_shift(y, shift, rule.rounding, words)

    new_trace = trace_update(trace, pre, rule)
    h = surrogate(v, vth, rule)
    post = saturate_error(error, rule) * h
    bias = np.zeros(n_out, np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    if rule.bias_bits:
        bias = np.clip(bias - post, -rule.bias_max, rule.bias_max)
    if rule.population_rule == "counter":  # §20 in place of §6 - §7
        new_signs, momentum, flips = counter_update(signs, momentum, post, new_trace, counter, rule,
                                                    lambda y, shift: rounded(y, shift, 1))
        return LearningUpdate(signs=new_signs, momentum=momentum, trace=new_trace,
                              second_moment=np.array(second_moment, dtype=np.int64), counter=int(counter) + 1,
                              flips=flips, surrogate=h, bias=bias)
    gradient = post[:, None] * new_trace[None, :]
    momentum = np.asarray(momentum, dtype=np.int64)
    momentum = momentum - rounded(momentum, rule.momentum_shift, 0) + rounded(gradient, rule.product_shift, 1)
    momentum = np.clip(momentum, -rule.momentum_max, rule.momentum_max)
    second_moment = np.array(second_moment, dtype=np.int64)
    theta = member_thresholds(rule.flip_threshold, n_out, rule)
    if rule.variant == "tbso":
        mean_square = int(np.sum(post * post)) * int(np.sum(new_trace * new_trace)) // (n_out * n_in)
        moment = np.int64(second_moment[t])
        moment = moment - rounded(moment, rule.second_moment_shift, 2) + rounded(
            np.int64(mean_square), rule.second_moment_product_shift, 3)
        second_moment[t] = min(max(int(moment), 0), rule.second_moment_max)
        theta = member_thresholds(rule.flip_threshold * math.isqrt(int(second_moment[t])), n_out,
                                  rule) >> rule.threshold_shift
    if (int(counter) + 1) % rule.t_epoch == 0:
        flips = signs * momentum > theta
    else:
        flips = np.zeros(signs.shape, dtype=bool)
    if rule.variant == "bso":
        momentum = np.where(flips, 0, momentum)
    return LearningUpdate(signs=np.where(flips, -signs, signs), momentum=momentum, trace=new_trace,
                          second_moment=second_moment, counter=int(counter) + 1, flips=flips, surrogate=h, bias=bias)


def counter_update(signs: np.ndarray, momentum: np.ndarray, post: np.ndarray, trace: np.ndarray, counter: int,
                   rule: LearningRule, rounded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared-counter population rule (docs/onchip-learning.md §20), class by class: class k (members
    kP ... kP + P - 1) keeps its accumulator a_k (n_in,) in member 0's momentum row. The product of every
    synapse of member 0's row is rounded with that synapse's word (``rounded(y, shift)``, y of the full
    layer's shape, stream 1), then::

        a_k = clip(a_k + R(sum_p post_(kP+p) trace, product_shift), +-counter_max)
        at a flip step: theta = min(theta0 + (theta0 counter >> growth_shift), counter_max) (growth_shift 0:
        theta0); members scanned from p = 0: input j's first member with sign +1 flips where a_kj > theta,
        its first with -1 where a_kj < -theta, and theta leaves |a_kj|; then a_k = clip(a_k, +-theta)

    Returns (signs, momentum registers (the other members' rows 0), flips)."""
    population = rule.population
    n_out, n_in = signs.shape
    summed = np.zeros((n_out, n_in), dtype=np.int64)  # the class product in member 0's rows, for R's words
    for k in range(0, n_out, population):
        summed[k] = int(np.sum(post[k:k + population])) * trace
    step = rounded(summed, rule.product_shift)
    registers = np.zeros((n_out, n_in), dtype=np.int64)
    new_signs = np.array(signs, dtype=np.int64)
    flips = np.zeros((n_out, n_in), dtype=bool)
    decide = (int(counter) + 1) % rule.t_epoch == 0
    theta = rule.counter_threshold
    if rule.counter_growth_shift:
        theta += (rule.counter_threshold * int(counter)) >> rule.counter_growth_shift
    theta = min(theta, rule.counter_max)
    for k in range(0, n_out, population):
        accumulator = np.clip(np.asarray(momentum[k], dtype=np.int64) + step[k], -rule.counter_max, rule.counter_max)
        if decide:
            pending_down, pending_up = accumulator > theta, accumulator < -theta
            for p in range(population):
                row = k + p
                down = pending_down & (new_signs[row] == 1)
                up = pending_up & (new_signs[row] == -1)
                flips[row] = down | up
                pending_down, pending_up = pending_down & ~down, pending_up & ~up
                accumulator = accumulator - theta * down + theta * up
            accumulator = np.clip(accumulator, -theta, theta)
        registers[k] = accumulator
    return np.where(flips, -new_signs, new_signs), registers, flips
