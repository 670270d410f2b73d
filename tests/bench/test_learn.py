"""``bso-deploy bench learn`` on a tiny config: the backends agree (checked inside the bench) and the records."""

from __future__ import annotations

import json

import pytest
from conftest import require_lava

from bso_deploy.bench.learn import LearnBenchConfig, run_learn_bench

REQUIRED = {"backend", "samples", "time_steps", "steps_per_sample", "seconds", "samples_per_second",
            "steps_per_second", "learning_steps_per_second", "learning_synapses", "variant", "flips", "network"}


def test_tiny_learn_bench_writes_records(tmp_path, capsys) -> None:
    require_lava()
    config = LearnBenchConfig(samples=6, warmup=2, hidden=16, time_steps=3, out_dir=str(tmp_path))
    records = run_learn_bench(config, progress=False)
    assert json.loads((tmp_path / "learn.json").read_text()) == records
    assert (tmp_path / "learn.png").stat().st_size > 0
    assert [r["backend"] for r in records] == ["sim", "torch", "lava"]
    for record in records:
        assert REQUIRED <= set(record)
        assert record["learning_steps_per_second"] > 0 and record["samples"] == 6 and record["time_steps"] == 3
    assert len({r["flips"] for r in records}) == 1 and records[0]["flips"] > 0  # same stream, same flips
    assert "sim / lava" in capsys.readouterr().out


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="backends"):
        LearnBenchConfig(backends=("sim", "gpu"))
    with pytest.raises(ValueError, match="samples"):
        LearnBenchConfig(samples=0)
