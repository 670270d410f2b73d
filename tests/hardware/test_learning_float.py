"""hardware/learning_float.py and LearningRule.from_float: the float BSO / T-BSO hyperparameters in the integer
rule's terms (docs/onchip-learning.md §9), each step with exact expectations."""

from __future__ import annotations

import math

import pytest
from bso_deploy.hardware.learning_float import (
    check_float_hyperparameters,
    decay_shift,
    momentum_scale,
    range_shift,
    tbso_flip_threshold,
    trace_reach,
)
from bso_deploy.hardware.learning_rule import LearningRule


def test_decay_shift_is_the_nearest_power_of_two_ema():
    assert [decay_shift(d) for d in (0.0, 0.5, 0.9375, 0.999, 0.99999)] == [0, 1, 4, 10, 17]


def test_trace_reach_is_the_fixed_point_of_the_trace_update():
    assert trace_reach(255, 64, 2048, 1, 12) == 128  # x = x / 2 + 64 settles at 128
    assert trace_reach(255, 10, 1000, 2, 12) == 82  # ceil(20 * 4096 / 1000) = ceil(81.92)
    assert trace_reach(255, 64, 512, 1, 12) == 255  # 512 > trace_max: saturates
    assert trace_reach(255, 64, 0, 1, 12) == 255  # no decay: the trace reaches its maximum


def test_range_shift():
    assert range_shift(4096, 10, 32767) == 8  # 4096 * 1024 / 32767 = 128.004 -> 2**8
    assert range_shift(4096, 3, 32768) == 0
    assert range_shift(1, 0, 32767) == -14  # fits with room: the caller clips at 0


def test_tbso_flip_threshold_keeps_threshold_bits_significant_bits():
    assert tbso_flip_threshold(0.0, 4, 4, 8, 8, 12) == (0, 0)
    assert tbso_flip_threshold(1.0, 4, 4, 8, 8, 12) == (2048, 11)
    assert tbso_flip_threshold(3.0, 4, 4, 8, 8, 12) == (3072, 10)
    assert tbso_flip_threshold(1.0, 6, 4, 8, 10, 12) == (2048, 8)  # factor 2**(2 + 1) = 8: 8 * 2**8
    assert tbso_flip_threshold(1e6, 0, 0, 0, 0, 12) == (1000000, 0)  # shift clipped at 0
    assert tbso_flip_threshold(1e-12, 0, 0, 0, 0, 12) == (0, 31)  # shift clipped at 31


def test_momentum_scale():
    assert momentum_scale(64, 8, 1, 4, 6) == 128.0
    assert momentum_scale(64, 1, 2, 0, 3) == 16.0


@pytest.mark.parametrize(("values", "match"), [
    ({"momentum": 1.0}, "momentum must be a float in"), ({"variance_decay": -0.1}, "variance_decay"),
    ({"momentum": True}, "momentum"), ({"threshold": math.inf}, "threshold must be a finite"),
    ({"threshold": -1.0}, "threshold"), ({"trace_scale": 0}, "must be > 0"),
])
def test_float_hyperparameters_are_checked(values, match):
    arguments = {"momentum": 0.9, "variance_decay": 0.99, "threshold": 0.0, "trace_scale": 64.0,
                 "error_scale": 1.0, "surrogate_scale": 1.0, **values}
    with pytest.raises(ValueError, match=match):
        check_float_hyperparameters(**arguments)


def test_from_float_mapping():
    bso = LearningRule.from_float("bso", momentum=0.9375, threshold=0.5, trace_scale=64, error_scale=8,
                                  error_target=16, product_shift=6)
    assert bso.momentum_shift == 4
    assert bso.flip_threshold == round(0.5 * 64 * 8 * 2 ** (4 - 6)) == bso.momentum_scale(64, 8) * 0.5
    tbso = LearningRule.from_float("tbso", momentum=0.999, variance_decay=0.99999, threshold=1e-3, error_target=16)
    assert (tbso.momentum_shift, tbso.second_moment_shift) == (10, 17)
    factor = 1e-3 * 2.0 ** (10 - tbso.product_shift + (tbso.second_moment_product_shift - 17) / 2)
    assert math.isclose(tbso.flip_threshold / 2 ** tbso.threshold_shift, factor, rel_tol=1e-3)
    # the automatic product shift keeps the worst-case momentum in range; precision_bits trades it for resolution
    g_max = 2 * 16 * 128  # 2 error_target * trace reach (64 / (1 - 1/2))
    assert g_max * 2 ** 10 / 2 ** tbso.product_shift <= tbso.momentum_max
    finer = LearningRule.from_float("tbso", momentum=0.999, threshold=1e-3, error_target=16, precision_bits=3)
    assert finer.product_shift == tbso.product_shift - 3
    with pytest.raises(ValueError, match="momentum"):
        LearningRule.from_float("bso", momentum=1.0)


def test_from_float_shifts_exactly():
    """g_max = 2 * 16 * 128 = 4096; s = 10: product_shift = ceil(log2(4096 * 1024 / 32767)) = 8; s2 = 17:
    p2 = ceil(log2(4096**2 * 2**17 / (2**32 - 1))) = 10 (2**41 / (2**32 - 1) is just above 2**9); threshold
    1e-3: factor = 1e-3 * 2**(10 - 8 + (10 - 17) / 2) = 2**-1.5 / 1000, floor(log2) = -12, threshold_shift =
    11 + 12 = 23, flip_threshold = round(2**21.5 / 1000) = round(2965.98)."""
    tbso = LearningRule.from_float("tbso", momentum=0.999, variance_decay=0.99999, threshold=1e-3, error_target=16)
    assert (tbso.product_shift, tbso.second_moment_product_shift) == (8, 10)
    assert (tbso.flip_threshold, tbso.threshold_shift) == (round(2 ** 21.5 / 1000), 23) == (2966, 23)
    given = LearningRule.from_float("bso", momentum=0.9375, threshold=2.0, product_shift=2, flip_threshold=99)
    assert (given.product_shift, given.flip_threshold) == (2, round(2.0 * 64 * 2 ** 2)) == (2, 512)
