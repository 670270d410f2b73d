"""``bso-deploy bench learn`` on a tiny config: the backends agree (checked inside the bench), the speed records,
the scenario table (real pretraining and on-chip learning on a tiny network) and the targets; the pure parts
(drop along the stream, targets) on hand-made rows."""

from __future__ import annotations

import json

import pytest
from conftest import require_lava

from bso_deploy.bench.learn import LearnBenchConfig, run_learn_bench
from bso_deploy.bench.learn_table import learn_targets, max_drop_after

REQUIRED = {"backend", "samples", "time_steps", "steps_per_sample", "seconds", "samples_per_second",
            "steps_per_second", "learning_steps_per_second", "learning_synapses", "variant", "flips", "network"}
TINY_NET = {"hidden": (16,), "train_epochs": 1, "eval_samples": 120}


def test_tiny_learn_bench_writes_records_table_and_targets(tmp_path, capsys) -> None:
    require_lava()
    config = LearnBenchConfig(samples=6, warmup=2, hidden=16, time_steps=3, out_dir=str(tmp_path),
                              scenarios=("digits/invert", "digits/class-incremental"),
                              learners=("P1", "P8+bias+counter"),
                              table_samples=40, adaptation=TINY_NET)
    data = run_learn_bench(config, progress=False)
    assert json.loads((tmp_path / "learn.json").read_text()) == data
    assert (tmp_path / "learn.png").stat().st_size > 0
    records = data["records"]
    assert [r["backend"] for r in records] == ["sim", "torch", "lava"]
    for record in records:
        assert REQUIRED <= set(record)
        assert record["learning_steps_per_second"] > 0 and record["samples"] == 6 and record["time_steps"] == 3
    assert len({r["flips"] for r in records}) == 1 and records[0]["flips"] > 0  # same stream, same flips
    table = data["table"]
    assert [(row["bench_scenario"], row["learner"]) for row in table] == [
        ("digits/invert", "P1"), ("digits/invert", "P8+bias+counter"),
        ("digits/class-incremental", "P1"), ("digits/class-incremental", "P8+bias+counter")]
    for row in table:
        assert row["samples"] == 40 and [point["samples"] for point in row["curve"]][-1] == 40
        assert 0.0 < row["reference_accuracy"] <= 1.0 and row["max_drop_after_200"] == 0.0  # 40 < 200 samples
    assert table[0]["scenario"] == "invert" and table[0]["new_class_accuracy_after"] is None
    assert table[2]["scenario"] == "class-incremental" and table[2]["new_class_accuracy_before"] < 0.05
    assert table[0]["pretrain_seconds"] == table[1]["pretrain_seconds"]  # one pretraining per scenario
    names = [t["target"] for t in data["targets"]]
    assert names == ["accuracy_after >= 85%", "reference_accuracy - accuracy_after <= 5 points",
                     "drop along the stream after 200 samples <= 5 points", "new classes >= 80%",
                     "old classes lose <= 5 points", "simulator learning steps/s >= 10x Lava"]
    out = capsys.readouterr().out
    assert "sim / lava" in out and "digits/class-incremental" in out and "target" in out


def test_max_drop_after_200_samples() -> None:
    curve = [{"samples": s, "accuracy": a} for s, a in ((0, 0.0), (100, 0.9), (200, 0.5), (300, 0.7), (400, 0.6),
                                                          (500, 0.8), (600, 0.55))]
    assert max_drop_after(curve) == pytest.approx(0.25)  # 0.8 at 500 -> 0.55 at 600; 0.9 at 100 is before 200
    assert max_drop_after(curve[:3]) == 0.0 and max_drop_after(curve[:2]) == 0.0


def test_targets_take_the_best_row() -> None:
    def row(scenario, learner, after, reference=0.9, drop=0.0, new=None, old=(None, None)):
        return {"bench_scenario": scenario, "learner": learner, "accuracy_after": after,
                "reference_accuracy": reference, "max_drop_after_200": drop, "new_class_accuracy_after": new,
                "old_class_accuracy_before": old[0], "old_class_accuracy_after": old[1]}

    rows = [row("digits/invert", "a", 0.6), row("digits/invert", "b", 0.87, drop=0.06),
            row("digits/class-incremental", "a", 0.7, new=0.9, old=(0.9, 0.7)),
            row("digits/class-incremental", "b", 0.7, new=0.81, old=(0.9, 0.88))]
    targets = learn_targets(rows, {"sim": 500.0, "lava": 20.0})
    assert [(t["learner"] if "learner" in t else None, t["met"]) for t in targets] == [
        ("b", True), ("b", True), ("b", False), ("b", True), ("b", True), (None, True)]
    assert targets[1]["value"] == pytest.approx(0.03) and targets[-1]["value"] == 25.0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="backends"):
        LearnBenchConfig(backends=("sim", "gpu"))
    with pytest.raises(ValueError, match="samples"):
        LearnBenchConfig(samples=0)
    with pytest.raises(ValueError, match="unknown scenario 'digits/upside-down'"):
        LearnBenchConfig(scenarios=("digits/upside-down",))
    with pytest.raises(ValueError, match="unknown learner"):
        LearnBenchConfig(learners=("P3",))
    with pytest.raises(ValueError, match="population"):
        LearnBenchConfig(adaptation={"population": 0})
