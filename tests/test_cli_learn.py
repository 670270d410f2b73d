"""``bso-deploy learn``: flags map onto AdaptationConfig, and a tiny run on Lava prints one JSON object with the
issue's keys and writes learn.json and learn.png (the real scenario: training, compile, on-chip learning)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from bso_deploy.hardware.learning_rule import POPULATION_RULES
from conftest import require_lava

from bso_deploy.cli import build_parser, main
from bso_deploy.commands.learn import learn_config_from_args
from bso_deploy.experiments.adaptation import AdaptationConfig
from bso_deploy.options import LEARNING_POPULATION_RULES

KEYS = {"accuracy_before", "accuracy_after", "float_accuracy_after", "flip_agreement", "bits_per_synapse", "backend"}


def test_no_arguments_is_the_reference_scenario_on_the_simulator() -> None:
    args = build_parser().parse_args(["learn"])
    assert learn_config_from_args(args) == AdaptationConfig()
    assert args.out == "runs/learn" and not args.json and args.backend == "sim"


def test_every_config_field_has_a_flag() -> None:
    args = build_parser().parse_args(["learn", "--backend", "lava", "--hidden", "32,16", "--samples", "7",
                                      "--variant", "bso", "--threshold", "0.25"])
    config = learn_config_from_args(args)
    assert (config.backend, config.hidden, config.samples, config.variant, config.threshold) == (
        "lava", (32, 16), 7, "bso", 0.25)
    assert {field.name for field in dataclasses.fields(AdaptationConfig)} <= set(vars(args))


def test_counter_population_rule_flags() -> None:
    """--population-rule counter and its two numbers (docs/onchip-learning.md §20); the choices are the rule's."""
    args = build_parser().parse_args(["learn", "--population", "8", "--learn-bias", "--population-rule", "counter",
                                      "--counter-threshold", "4.5", "--counter-growth-shift", "0"])
    config = learn_config_from_args(args)
    assert (config.population_rule, config.counter_threshold, config.counter_growth_shift) == ("counter", 4.5, 0)
    assert LEARNING_POPULATION_RULES == POPULATION_RULES
    for name in POPULATION_RULES:
        assert learn_config_from_args(build_parser().parse_args(["learn", "--population-rule", name])) == \
            AdaptationConfig(population_rule=name)


def test_fashion_mnist_is_a_data_set_of_the_scenario() -> None:
    config = learn_config_from_args(build_parser().parse_args(["learn", "--dataset", "fashion-mnist"]))
    assert config == AdaptationConfig(dataset="fashion-mnist")


def test_data_root_is_where_the_scenario_reads_its_data(tmp_path, capsys) -> None:
    args = build_parser().parse_args(["learn", "--dataset", "fashion-mnist", "--data-root", str(tmp_path)])
    assert learn_config_from_args(args) == AdaptationConfig(dataset="fashion-mnist", data_root=str(tmp_path))
    assert main(["learn", "--dataset", "fashion-mnist", "--data-root", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bso-deploy learn: error: Fashion-MNIST not found") and str(tmp_path) in error
    assert "\n" not in error


def test_bad_value_is_an_error_naming_the_field(capsys) -> None:
    assert main(["learn", "--shift", "upside-down", "--no-progress"]) == 2
    assert "shift" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_run_on_lava_prints_one_json_object_and_writes_files(tmp_path, capsys) -> None:
    require_lava()
    out = tmp_path / "learn"
    code = main(["learn", "--backend", "lava", "--train-epochs", "1", "--hidden", "16", "--samples", "12",
                 "--eval-samples", "40", "--curve-points", "2", "--time-steps", "2", "--json", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert KEYS <= set(result)
    assert result["backend"] == "lava"
    assert 0.0 <= result["accuracy_before"] <= 1.0 and 0.0 <= result["accuracy_after"] <= 1.0
    assert result["bits_per_synapse"] < 33
    written = json.loads((out / "learn.json").read_text())
    assert written == {key: value for key, value in result.items() if key != "out"}
    assert (out / "learn.png").stat().st_size > 0


def test_demo_learner_flags_are_the_bench_learner() -> None:
    """examples/demo.py's stage 5 spells bench learn's P8+bias+counter+hinge as flags: the same config."""
    import importlib.util
    from pathlib import Path

    from bso_deploy.bench.learn_table import LEARNERS

    path = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
    spec = importlib.util.spec_from_file_location("demo_example", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    from_flags = learn_config_from_args(build_parser().parse_args(["learn", *demo.LEARNER_FLAGS]))
    assert from_flags == AdaptationConfig(**LEARNERS["P8+bias+counter+hinge"])
    assert from_flags != AdaptationConfig()
