"""Hidden-layer learning in the adaptation scenario (bso_deploy/experiments/adaptation_hidden.py,
docs/onchip-learning.md §18, §19): the feedback-alignment pair carries both learners' states across chunks (with a
hidden threshold no momentum reaches, the run is the readout-only run exactly), the hidden layer flips with a
reachable one (also behind a population readout), the torch learner gives the same run, and a network without a
binary hidden layer is refused."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from conftest import require

from bso_deploy.experiments import adaptation
from bso_deploy.experiments.adaptation import AdaptationConfig, run_adaptation

TINY = {"hidden": (32, 32), "train_epochs": 1, "samples": 90, "curve_points": 3, "eval_samples": 150,
        "learn_bias": True}


@pytest.fixture(scope="module")
def pretrained():
    require("nir")
    return adaptation._pretrain(AdaptationConfig(**TINY), progress=False)


def test_unreachable_hidden_threshold_is_the_readout_only_run(pretrained):
    plain = run_adaptation(AdaptationConfig(**TINY), progress=False, pretrained=pretrained).to_dict()
    frozen = run_adaptation(AdaptationConfig(**TINY, feedback_alignment=True, hidden_threshold=1e6), progress=False,
                            pretrained=pretrained).to_dict()
    assert frozen["details"]["hidden_flips"] == 0 and plain["flips"] > 0
    for key in ("curve", "flips", "accuracy_after", "sign_agreement"):
        assert frozen[key] == plain[key], key
    assert frozen["details"]["float_rule_comparable"] is False


@pytest.mark.parametrize("population", [1, 2])
def test_hidden_layer_learns_by_feedback_alignment(pretrained, population):
    config = AdaptationConfig(**TINY, feedback_alignment=True, population=population)
    result = run_adaptation(config, progress=False, pretrained=pretrained).to_dict()
    assert result["details"]["hidden_flips"] > 0 and result["flips"] > 0
    again = run_adaptation(config, progress=False, pretrained=copy.deepcopy(pretrained)).to_dict()
    assert again["curve"] == result["curve"]  # seeded: the same stream, B and roundings
    assert 0.0 <= result["accuracy_after"] <= 1.0


def test_feedback_alignment_needs_a_binary_hidden_layer():
    with pytest.raises(ValueError, match="two hidden"):
        AdaptationConfig(hidden=(64,), feedback_alignment=True)
    assert AdaptationConfig(hidden=(64, 64), feedback_alignment=True, population=2).population == 2  # §18, P > 1
    with pytest.raises(ValueError, match="feedback_alignment"):
        AdaptationConfig(feedback_alignment=1)
    with pytest.raises(ValueError, match="hidden_threshold"):
        AdaptationConfig(hidden_threshold=-1.0)
    assert replace(AdaptationConfig(hidden=(8, 8)), feedback_alignment=True).feedback_alignment
    assert np.isfinite(AdaptationConfig().hidden_threshold)


def test_feedback_alignment_scenario_is_identical_on_sim_and_torch(pretrained):
    config = AdaptationConfig(**TINY, feedback_alignment=True, population=2)
    sim = run_adaptation(config, progress=False, pretrained=pretrained).to_dict()
    on_torch = run_adaptation(replace(config, backend="torch"), progress=False, pretrained=pretrained).to_dict()
    for key in ("curve", "flips", "accuracy_after", "sign_agreement", "reference_accuracy"):
        assert on_torch[key] == sim[key], key
    assert on_torch["details"]["hidden_flips"] == sim["details"]["hidden_flips"] > 0
