"""The hinge readout error (docs/onchip-learning.md §21): hand-derived errors (the rival is the lowest-index
strongest non-label class, a lead of exactly A meets the margin, pooled population currents), the NumPy, torch
and Lava-side errors equal on many random currents with ties, and the NumPy rule == the torch rule after every
step on all state with the counter rule and the hinge error (the Lava runtime: test_lava_learning.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from bso_deploy.hardware.lava.learning_arithmetic import readout_error
from bso_deploy.hardware.learning import LearningRule, SimLearner
from bso_deploy.hardware.learning_readout import hinge_error_int, readout_error_int
from bso_deploy.hardware.torch_learning import TorchLearner, torch_readout_error
from test_learning_counter import _random_case, runs_agree


def test_hinge_error_by_hand():
    # rival: class 1 and 2 tie at 5, the lowest index wins; the label 0 trails: -A, +A
    np.testing.assert_array_equal(hinge_error_int(np.array([3, 5, 5]), 0, 2), [-2, 2, 0])
    # the label leads by exactly A = 2: met, no error; by 1: the strongest rival moves
    np.testing.assert_array_equal(hinge_error_int(np.array([7, 5, 1]), 0, 2), [0, 0, 0])
    np.testing.assert_array_equal(hinge_error_int(np.array([1, 6, 7]), 2, 2), [0, 2, -2])
    # P = 2, error_shift 1: pooled currents (4 + 5, 2 + 2, -1 - 7) floor-divided by 4 -> (2, 1, -2); label 1
    rule = LearningRule(population=2, error_shift=1, error_target=3, error_shape="hinge")
    np.testing.assert_array_equal(readout_error_int(np.array([4, 5, 2, 2, -1, -7]), 1, rule),
                                  [3, 3, -3, -3, 0, 0])
    with pytest.raises(ValueError, match="error_shape"):
        LearningRule(error_shape="softmax")
    assert LearningRule.from_dict(LearningRule(error_shape="hinge").to_dict()).error_shape == "hinge"


def test_numpy_torch_and_lava_hinge_errors_agree():
    """1000 seeded random currents with many ties between classes (small ranges): the three errors are equal,
    and moved (two nonzero classes), met (all zero) and tied rivals all occur."""
    seen = {"moved": 0, "met": 0, "tied rival": 0}
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        population, classes = int(rng.integers(1, 4)), int(rng.integers(2, 6))
        rule = LearningRule(population=population, error_shift=int(rng.integers(0, 3)),
                            error_target=int(rng.integers(1, 5)), error_shape="hinge")
        current, label = rng.integers(-12, 13, classes * population), int(rng.integers(0, classes))
        expected = readout_error_int(current, label, rule)
        np.testing.assert_array_equal(readout_error(current, label, rule), expected, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(torch_readout_error(torch.from_numpy(current), label, rule).numpy(), expected,
                                      err_msg=f"seed {seed}")
        class_error = expected[::population]
        scaled = np.floor_divide(current.reshape(-1, population).sum(axis=1), population << rule.error_shift)
        others = np.delete(scaled, label)
        moved = np.count_nonzero(class_error) == 2
        seen["moved" if moved else "met"] += 1
        seen["tied rival"] += int(moved and np.sum(others == others.max()) > 1)
        assert moved == (scaled[label] - others.max() < rule.error_target)
    assert all(count > 0 for count in seen.values()), seen


def test_numpy_and_torch_hinge_counter_rules_agree_on_every_step():
    """The 18 seeded random readouts of test_learning_counter with the hinge error: every recorded state equal
    after every step; flips, steps with a moving error and steps with a met margin all occur."""
    seen = {"flips": 0, "moved": 0, "met": 0}
    for seed in range(18):
        fx_net, rule, inputs, labels = _random_case(seed)
        rule = replace(rule, error_shape="hinge")
        sim, reference = SimLearner(fx_net, rule), TorchLearner(fx_net, rule, device="cpu")
        for chunk in np.array_split(np.arange(len(labels)), 2):
            a = runs_agree(sim, reference, inputs[:, chunk], labels[chunk], f"seed {seed}")
            window = a.steps["error"][:, 2:2 + rule.time_steps, ::rule.population]
            nonzero = np.count_nonzero(window, axis=-1)
            assert set(np.unique(nonzero)) <= {0, 2}
            seen["flips"] += len(a.flip_events)
            seen["moved"] += int(np.sum(nonzero == 2))
            seen["met"] += int(np.sum(nonzero == 0))
        for name in ("weight", "momentum", "trace", "bias"):
            np.testing.assert_array_equal(getattr(sim.state, name), getattr(reference.state, name))
    assert all(count > 0 for count in seen.values()), seen
