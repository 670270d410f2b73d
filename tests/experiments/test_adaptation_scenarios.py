"""The adaptation scenarios (bso_deploy/experiments/adaptation_scenarios.py, docs/onchip-learning.md §19): the
milder shifts on hand-made images, the class-incremental subset and accuracies, and a short class-incremental run
whose pretraining sees the old classes only and whose on-chip learning lifts the new ones, identically on the
simulator and the torch learner."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from conftest import require

from bso_deploy.experiments import adaptation
from bso_deploy.experiments.adaptation import AdaptationConfig, run_adaptation
from bso_deploy.experiments.adaptation_scenarios import (
    CONTRAST_BACKGROUND,
    CONTRAST_GAIN,
    ROTATION_DEGREES,
    class_accuracies,
    pretraining_subset,
    scenario_name,
    shift_inputs,
)

TINY = {"hidden": (32,), "train_epochs": 2, "samples": 150, "curve_points": 2, "eval_samples": 300,
        "shift": "none", "pretrain_classes": 5}


def test_contrast_is_the_affine_map():
    x = np.random.default_rng(0).random((4, 64)).astype(np.float32)
    np.testing.assert_array_equal(shift_inputs(x, "contrast"), (CONTRAST_BACKGROUND + CONTRAST_GAIN * x)
                                  .astype(np.float32))
    assert shift_inputs(np.zeros((1, 64)), "contrast").min() == CONTRAST_BACKGROUND


def test_rotation_turns_a_bar_about_the_centre():
    """A horizontal bar through the centre of a 29x29 image ends at ROTATION_DEGREES counter-clockwise: its
    pixels' principal axis has that angle (rows grow downwards, so counter-clockwise is -row per +column)."""
    image = np.zeros((29, 29), np.float32)
    image[14, 4:25] = 1.0
    turned = shift_inputs(image.reshape(1, -1), "rotate", (29, 29)).reshape(29, 29)
    assert turned[14, 14] == pytest.approx(1.0) and 0.0 <= turned.min() and turned.max() <= 1.0
    rows, cols = np.nonzero(turned > 0.5)
    slope = np.polyfit(cols - 14.0, 14.0 - rows, 1)[0]
    assert np.degrees(np.arctan(slope)) == pytest.approx(ROTATION_DEGREES, abs=2.0)
    assert turned.sum() == pytest.approx(image.sum(), rel=0.1)  # bilinear: the bar's mass stays
    digits = np.random.default_rng(1).random((3, 64)).astype(np.float32)
    assert not np.array_equal(shift_inputs(digits, "rotate"), digits)


def test_pretraining_subset_and_class_accuracies():
    x, labels = np.arange(20).reshape(10, 2), np.arange(10)
    kept, kept_labels = pretraining_subset(x, labels, 4)
    np.testing.assert_array_equal(kept_labels, [0, 1, 2, 3])
    np.testing.assert_array_equal(kept, x[:4])
    assert pretraining_subset(x, labels, 0)[0] is x
    predictions = np.array([0, 1, 0, 0, 4, 5, 0, 0, 0, 0])  # old 0-3: 2 of 4 right; new 4-9: 2 of 6
    assert class_accuracies(predictions, labels, 4) == {"new_class_accuracy": 2 / 6, "old_class_accuracy": 0.5}
    assert class_accuracies(predictions, labels, 0) == {}
    with pytest.raises(ValueError, match="pretrain_classes"):
        class_accuracies(predictions[:3], labels[:3], 4)
    assert scenario_name("invert", 0) == "invert" and scenario_name("none", 5) == "class-incremental"
    assert scenario_name("rotate", 5) == "class-incremental+rotate"


@pytest.fixture(scope="module")
def pretrained():
    require("nir")
    return adaptation._pretrain(AdaptationConfig(**TINY), progress=False)


def test_pretraining_sees_the_old_classes_only(pretrained):
    with pytest.raises(ValueError, match="pretrain_classes"):
        adaptation._pretrain(AdaptationConfig(**{**TINY, "pretrain_classes": 10}), progress=False)
    result = run_adaptation(AdaptationConfig(**TINY), progress=False, pretrained=pretrained).to_dict()
    assert result["scenario"] == "class-incremental"
    assert result["new_class_accuracy_before"] < 0.05 < result["old_class_accuracy_before"]  # never trained on 5-9
    assert result["new_class_accuracy_after"] > result["new_class_accuracy_before"] + 0.2
    assert set(result["curve"][-1]) >= {"new_class_accuracy", "old_class_accuracy", "accuracy"}


def test_class_incremental_runs_identically_on_sim_and_torch(pretrained, monkeypatch):
    monkeypatch.setattr(adaptation, "_pretrain", lambda config, progress: copy.deepcopy(pretrained))
    config = AdaptationConfig(**TINY, population=2, learn_bias=True)
    sim = run_adaptation(config, progress=False).to_dict()
    on_torch = run_adaptation(replace(config, backend="torch"), progress=False)
    for key in ("curve", "flips", "new_class_accuracy_after", "old_class_accuracy_after", "reference_accuracy"):
        assert on_torch.to_dict()[key] == sim[key], key
    plain = run_adaptation(AdaptationConfig(**{**TINY, "pretrain_classes": 0}), progress=False).to_dict()
    assert plain["new_class_accuracy_after"] is None and plain["scenario"] == "none"
    # before the stream the population readout predicts as the deployed one (members equal, §14)
    assert sim["accuracy_before"] == plain["accuracy_before"] == sim["curve"][0]["accuracy"]
