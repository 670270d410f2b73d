"""``python -m bso_deploy.bench.data_scale`` on digits for real (MLP and CNN, 1 epoch, a few test images): the
JSON holds 0 mismatches sim vs torch and sim vs Lava, and a second run reuses the trained models and finds
the same parity figures. No timed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import require_lava

from bso_deploy.bench.data_scale import ScaleBenchConfig, main


def test_scale_bench_on_digits_writes_exact_parity_figures(tmp_path, capsys):
    require_lava()
    out, cache = tmp_path / "bench", tmp_path / "cache"
    args = ["--dataset", "digits", "--test-samples", "24", "--lava-samples", "3", "--out", str(out), "--cache",
            str(cache), "--no-progress"]
    assert main(args) == 0
    assert "sim=torch" in capsys.readouterr().out
    report = json.loads((out / "parity_digits.json").read_text())
    assert [row["model"] for row in report["rows"]] == ["mlp", "cnn"]
    assert report["command"].startswith("bso-deploy bench scale --dataset digits")
    for row in report["rows"]:
        parity, lava, timing = row["parity"], row["lava"], row["timing"]
        assert (parity["samples"], parity["mismatches"], parity["input_clipped"]) == (24, 0, 0)
        assert parity["compared_spikes"] > 0 and 0.0 <= parity["fixed_accuracy"] <= 1.0
        assert (lava["samples"], lava["mismatches"]) == (3, 0)
        assert timing["error"] is None and timing["test_samples"] == 450 and timing["sim_over_float_torch"] > 0
        metrics = json.loads((Path(row["run_folder"]) / "metrics.json").read_text())
        assert row["trained_here"] and row["epochs"] == len(metrics["epochs"]) == 1
    assert main([*args, "--lava-samples", "0"]) == 0  # the last value counts
    again = json.loads((out / "parity_digits.json").read_text())
    assert [row["trained_here"] for row in again["rows"]] == [False, False]  # the cached models
    for first, second in zip(report["rows"], again["rows"], strict=True):
        assert "lava" not in second and second["parity"] == {
            **first["parity"], "backend_seconds": second["parity"]["backend_seconds"],
            "seconds": second["parity"]["seconds"]}


def test_bad_settings_are_one_line_errors(capsys):
    assert main(["--models", "vgg"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bench data_scale: error: models must be distinct names") and "\n" not in error
    assert ScaleBenchConfig(test_samples=5).data_config().methods == ("tbso",)
    assert np.isclose(ScaleBenchConfig().test_samples, 10000)
