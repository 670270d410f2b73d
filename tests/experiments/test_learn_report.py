"""bso_deploy/experiments/learn_report.py: the summary of a `bso-deploy learn` result."""

from __future__ import annotations

from bso_deploy.experiments.learn_report import format_learn_summary

RESULT = {"backend": "sim", "accuracy_before": 0.01, "accuracy_after": 0.8, "float_accuracy_before": 0.01,
          "float_accuracy_after": 0.5, "flip_agreement": 0.97, "flip_precision": 0.96, "flip_recall": 0.98,
          "flips": 120, "float_flips": 118, "bits_per_synapse": 17, "scenario": "invert",
          "reference_accuracy": 0.9, "config": {"variant": "tbso", "population": 1}}


def test_summary_gives_the_flip_agreement_where_the_float_rule_is_comparable() -> None:
    text = format_learn_summary({**RESULT, "details": {"float_rule_comparable": True}})
    assert "flip agreement with float: 97.0% (precision 96.0%, recall 98.0%; 120 fixed vs 118 float flips)" in text


def test_summary_says_not_comparable_for_a_population_readout() -> None:
    result = {**RESULT, "config": {"variant": "tbso", "population": 8},
              "details": {"float_rule_comparable": False}}
    text = format_learn_summary(result)
    assert "flip agreement with float: not comparable (120 fixed flips" in text
    assert "97.0%" not in text
