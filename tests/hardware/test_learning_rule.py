"""hardware/learning_rule.py: LearningRule's validation names the field, its derived ranges, the dict round trip
with its version (docs/onchip-learning.md §2)."""

from __future__ import annotations

import dataclasses

import pytest
from bso_deploy.hardware.learning_rule import RULE_VERSION, LearningRule


@pytest.mark.parametrize(("fields", "match"), [
    ({"variant": "adam"}, "variant"), ({"rounding": "up"}, "rounding"), ({"trace_decay": 4096}, "trace_decay"),
    ({"trace_increment": 256}, "trace_increment"), ({"surrogate_table": (16,)}, "surrogate_table"),
    ({"surrogate_table": ()}, "surrogate_table"), ({"error_target": 64, "error_bits": 8}, "error_target"),
    ({"momentum_bits": 1}, "momentum_bits"), ({"t_epoch": 0}, "t_epoch"), ({"seed": -1}, "seed"),
    ({"rounding": "stochastic", "product_shift": 33}, "product_shift"), ({"time_steps": 2.0}, "time_steps"),
    ({"variant": "bso", "flip_threshold": 1 << 15, "momentum_bits": 16}, "flip_threshold"),
])
def test_rule_validation_names_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        LearningRule(**fields)


def test_rule_validation_messages_give_the_range_and_the_reason():
    with pytest.raises(ValueError, match=r"^LearningRule.trace_decay = 4096 is outside \[0, 4095\]; a 12-bit decay"):
        LearningRule(trace_decay=4096)
    with pytest.raises(ValueError, match=r"^LearningRule.time_steps must be an integer, got True$"):
        LearningRule(time_steps=True)
    with pytest.raises(ValueError, match=r"surrogate_table must be a sequence of integers, got 3"):
        LearningRule(surrogate_table=3)
    with pytest.raises(ValueError, match=r"surrogate_table\[1\] = 16 is outside \[0, 15\]"):
        LearningRule(surrogate_table=(1, 16))


def test_derived_ranges_of_the_default_rule():
    rule = LearningRule()
    assert (rule.trace_max, rule.error_max, rule.momentum_max) == (255, 127, 32767)
    assert (rule.second_moment_max, rule.surrogate_max, rule.bits_per_synapse) == ((1 << 32) - 1, 8, 17)
    assert rule.product_bound(10, 3, spiking=True) == (127 * 8 * 255) ** 2 * 30
    assert rule.product_bound(10, 3, spiking=False) == (127 * 255) ** 2 * 30


def test_rule_is_frozen_and_keeps_a_tuple_table():
    rule = LearningRule(surrogate_table=[3, 1])
    assert rule.surrogate_table == (3, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.momentum_shift = 2


def test_rule_round_trips_through_a_dict():
    rule = LearningRule(variant="bso", surrogate_table=[3, 1], rounding="stochastic", seed=9)
    assert LearningRule.from_dict(rule.to_dict()) == rule
    assert rule.to_dict()["version"] == RULE_VERSION and rule.to_dict()["surrogate_table"] == [3, 1]
    with pytest.raises(ValueError, match="unknown"):
        LearningRule.from_dict({**rule.to_dict(), "lr": 1})
    with pytest.raises(ValueError, match=f"version 2 is not supported \\(this bso-deploy reads {RULE_VERSION}\\)"):
        LearningRule.from_dict({**rule.to_dict(), "version": 2})
    assert rule.bits_per_synapse == 1 + rule.momentum_bits
