"""hardware/lava/learning_arithmetic.py, the Lava learning processes' own reading of docs/onchip-learning.md
§3 - §8: the spec's hand-derived single-synapse traces, the hash in plain Python integers, then random layers,
rules and streams (saturation, ties, both variants and roundings, t_epoch) against the NumPy rule
(``hardware/learning.py``) with ``assert_array_equal`` after every step. Pure NumPy, no Lava runtime.
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware import learning as numpy_rule
from bso_deploy.hardware.lava import learning_arithmetic as lava_rule
from bso_deploy.hardware.learner import LearningState
from bso_deploy.hardware.learning_rule import LearningRule
from test_learning import _reference_hash32 as _plain_hash32  # §8 in plain Python integers


def test_hash_and_words_follow_the_spec() -> None:
    values = [0, 1, 12345, 0xFFFFFFFF, 0x9E3779B9]
    assert lava_rule.hash32(np.array(values, dtype=np.uint64)).tolist() == [_plain_hash32(x) for x in values]
    seed, counter = 123, 45
    key = _plain_hash32((seed + counter * 0x9E3779B9) & 0xFFFFFFFF)
    expected = [_plain_hash32(key ^ (4 * i + 2)) for i in range(10)]
    words = lava_rule.random_words(seed, counter, 10, 2)
    assert words.dtype == np.int64 and words.tolist() == expected
    huge = lava_rule.random_words(0xFFFFFFFF, 10**12, 3, 0)  # seed + counter * golden far beyond 2**32
    assert huge.tolist() == [_plain_hash32(_plain_hash32((0xFFFFFFFF + 10**12 * 0x9E3779B9) & 0xFFFFFFFF) ^ (4 * i))
                             for i in range(3)]


def test_roundings_trace_surrogate_and_error_by_hand() -> None:
    y = np.array([-13, -12, -6, -5, 0, 5, 6, 12, 13])
    assert lava_rule.round_shift(y, 2, "nearest").tolist() == [-3, -3, -2, -1, 0, 1, 2, 3, 3]
    words = np.array([0, 7, 2, 3, 4, 5, 6, 7, 1])  # low 3 bits: the threshold of the dropped bits
    # -13 = -2 * 8 + 3: up where 3 > word & 7
    assert lava_rule.round_shift(np.full(9, -13), 3, "stochastic", words).tolist() == [-1, -2, -1, -2, -2, -2, -2,
                                                                                       -2, -1]
    rule = LearningRule(trace_decay=2048, trace_increment=64, trace_bits=7, surrogate_shift=6,
                        surrogate_table=(8, 4), error_shift=2, error_target=5, error_bits=8)
    assert lava_rule.trace_update(np.array([0, 64, 127, 3]), np.array([1, 0, 1, 0]), rule).tolist() == [64, 32, 127, 1]
    v = np.array([640, 700, 576, 768, 769, 0])  # vth 10: distances 0, 60, 64, 128, 129, 640 -> >> 6: 0, 0, 1, 2, 2, 10
    assert lava_rule.surrogate(v, np.full(6, 10), rule).tolist() == [8, 8, 4, 0, 0, 0]
    assert lava_rule.surrogate(v, None, rule).tolist() == [1] * 6
    current = np.array([-100, -20, -4, 0, 7, 100])  # floor(c / 4): -25, -5, -1, 0, 1, 25
    assert lava_rule.readout_error(current, 4, rule).tolist() == [0, 0, 4, 5, -4, 10]


def _step(state: dict, pre, v, vth, error, t: int, rule: LearningRule) -> lava_rule.LearningUpdate:
    return lava_rule.learning_update(**state, pre=pre, v=v, vth=vth, error=error, t=t, rule=rule)


def test_single_synapse_bso_and_tbso_by_hand() -> None:
    """The traces of tests/hardware/test_learning.py (docs/onchip-learning.md §6, §7), recomputed here:
    BSO: x 64, 32, 80, 104; m 24, 30, 52 > 50 flips (m reset to 0, W = -1), 39. T-BSO: s[t] 2304, 576, 3600 and
    thresholds 48, 24, 60: only step 1 flips (m kept)."""
    state = dict(signs=np.array([[1]]), momentum=np.zeros((1, 1), np.int64), trace=np.zeros(1, np.int64),
                 second_moment=np.zeros(4, np.int64), counter=0)
    bso = LearningRule(variant="bso", momentum_shift=2, product_shift=3, flip_threshold=50)
    seen, current = [], dict(state)
    for t, pre in enumerate([1, 0, 1, 1]):
        update = _step(current, np.array([pre]), np.array([0]), None, np.array([3]), t, bso)
        seen.append((int(update.trace[0]), int(update.momentum[0, 0]), int(update.signs[0, 0]),
                     bool(update.flips[0, 0])))
        current = dict(signs=update.signs, momentum=update.momentum, trace=update.trace,
                       second_moment=update.second_moment, counter=update.counter)
    assert seen == [(64, 24, 1, False), (32, 30, 1, False), (80, 0, -1, True), (104, 39, -1, False)]
    tbso = LearningRule(variant="tbso", momentum_shift=2, product_shift=3, flip_threshold=2, threshold_shift=1,
                        second_moment_shift=1, second_moment_product_shift=4)
    seen, current = [], dict(state)
    for t, pre in enumerate([1, 0, 1]):
        update = _step(current, np.array([pre]), np.array([0]), None, np.array([3]), t, tbso)
        seen.append((int(update.second_moment[t]), int(update.momentum[0, 0]), bool(update.flips[0, 0])))
        current = dict(signs=update.signs, momentum=update.momentum, trace=update.trace,
                       second_moment=update.second_moment, counter=update.counter)
    assert seen == [(2304, 24, False), (576, 30, True), (3600, 52, False)]


RULES = [
    dict(variant="bso", rounding="nearest", flip_threshold=5, momentum_bits=4),
    dict(variant="bso", rounding="stochastic", flip_threshold=3, t_epoch=3, momentum_bits=6, momentum_shift=1),
    dict(variant="tbso", rounding="nearest", flip_threshold=9, threshold_shift=3, second_moment_bits=12,
         momentum_bits=5),
    dict(variant="tbso", rounding="stochastic", t_epoch=2, flip_threshold=5, threshold_shift=6, second_moment_shift=2,
         second_moment_product_shift=4, momentum_bits=5),
]


@pytest.mark.parametrize("case", range(len(RULES)))
def test_learning_update_equals_the_numpy_rule_every_step(case: int) -> None:
    """Random layers (readouts and spiking layers), random voltages near the threshold, errors beyond the
    register (saturated), graded and spike inputs; 60 steps per layer, state carried: signs, momenta, traces,
    second moments, counter, flips and surrogate equal the NumPy rule's after every step, and the stream
    reaches flips and saturated momenta and traces."""
    seen = {"flips": 0, "momentum saturated": 0, "trace saturated": 0}
    for layer in range(6):
        rng = np.random.default_rng(100 * case + layer)
        rule = LearningRule(time_steps=4, trace_bits=5, trace_increment=int(rng.integers(1, 16)), trace_decay=1024,
                            product_shift=int(rng.integers(0, 6)), error_bits=6, error_target=8, seed=int(case),
                            surrogate_shift=int(rng.integers(0, 8)), surrogate_table=(7, 5, 3, 1),
                            **{"momentum_shift": 2, **RULES[case]})
        n_out, n_in = int(rng.integers(1, 7)), int(rng.integers(1, 9))
        vth = rng.integers(0, 60, n_out) if layer % 2 else None
        state = LearningState(weight=rng.choice([-1, 1], (n_out, n_in)).astype(np.int8),
                              momentum=rng.integers(-rule.momentum_max, rule.momentum_max + 1, (n_out, n_in)),
                              trace=np.zeros(n_in, np.int64), second_moment=np.zeros(4, np.int64),
                              counter=int(rng.integers(0, 1000)))
        graded = layer % 3 == 0
        for step in range(60):
            t = step % 4
            pre = rng.integers(0, 256 if graded else 2, n_in)
            v = (0 if vth is None else vth << 6) + rng.integers(-400, 400, n_out)
            error = rng.integers(-2 * rule.error_max, 2 * rule.error_max + 1, n_out)
            got = lava_rule.learning_update(signs=state.weight, momentum=state.momentum, trace=state.trace,
                                            second_moment=state.second_moment, counter=state.counter, pre=pre,
                                            v=v, vth=vth, error=error, t=t, rule=rule)
            state, flips = numpy_rule.learning_step_int(state, pre, v, vth, error, t, rule)
            context = f"rule {case} layer {layer} step {step}"
            for name, want in (("signs", state.weight), ("momentum", state.momentum), ("trace", state.trace),
                               ("second_moment", state.second_moment), ("flips", flips),
                               ("surrogate", numpy_rule.surrogate_int(v, vth, rule))):
                np.testing.assert_array_equal(getattr(got, name), want, err_msg=f"{context}: {name}")
            assert got.counter == state.counter, context
            seen["flips"] += int(flips.sum())
            seen["momentum saturated"] += int(np.sum(np.abs(state.momentum) == rule.momentum_max))
            seen["trace saturated"] += int(np.sum(state.trace == rule.trace_max))
    assert all(count > 0 for count in seen.values()), seen


def test_readout_error_equals_the_numpy_rule() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        rule = LearningRule(error_shift=int(rng.integers(0, 12)), error_target=int(rng.integers(0, 64)), error_bits=8)
        current = rng.integers(-(1 << 23), 1 << 23, 10) >> int(rng.integers(0, 20))
        label = int(rng.integers(0, 10))
        np.testing.assert_array_equal(lava_rule.readout_error(current, label, rule),
                                      numpy_rule.readout_error_int(current, label, rule))
