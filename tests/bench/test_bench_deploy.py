"""``bso-deploy bench deploy --quick`` for real: an snnTorch MLP (trained by snnTorch, exported with its own
NIR exporter) and a lava-dl network (slayer blocks, their own netx export), through the command line; the JSON
rows hold measured numbers that agree with what the library computes on its own."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
from bso_deploy.hardware.backends import run_graph
from conftest import require, require_lava

from bso_deploy.bench.deploy import TARGETS, DeployBenchConfig
from bso_deploy.bench.thirdparty import NetworkSizes, build_network
from bso_deploy.bench.weight_rounding import round_weights
from bso_deploy.cli import main

ROW_KEYS = {"network", "framework", "scaling", "profile", "time_steps", "samples", "framework_accuracy",
            "float_accuracy", "fixed_accuracy", "prediction_agreement", "spike_ratio", "spike_precision",
            "spike_recall", "saturation", "mismatches", "lava_samples", "error", "targets_met", "seconds"}


def test_quick_deploy_bench_writes_measured_rows(tmp_path, capsys) -> None:
    require("snntorch")
    require("lava.lib.dl.slayer")
    require_lava()
    out, cache = tmp_path / "bench", tmp_path / "cache"
    code = main(["bench", "deploy", "--quick", "--networks", "snntorch-mlp,lavadl-mlp", "--lava-samples", "2",
                 "--seed", "3", "--out", str(out), "--cache", str(cache), "--no-progress"])
    assert code == 0
    report = json.loads((out / "deploy.json").read_text())
    assert (out / "deploy.png").stat().st_size > 0
    assert report["seed"] == 3 and report["quick"] is True and report["targets"] == json.loads(json.dumps(TARGETS))
    assert report["seconds"] > 0 and report["command"].startswith("bso-deploy bench deploy --networks snntorch-mlp,")
    assert "--seed 3" in report["command"] and report["command"].endswith("--quick")
    rows = report["rows"]
    assert set(report["targets_summary"]) == {"spike_ratio", "accuracy", "prediction_agreement", "mismatches",
                                              "netx_mismatches"}
    assert report["targets_summary"]["mismatches"] is True and report["targets_summary"]["netx_mismatches"] is True
    assert [(r["network"], r["scaling"]) for r in rows] == [
        ("snntorch-mlp", "worst-case"), ("snntorch-mlp", "calibrated"), ("lavadl-mlp", "netx")]
    for row in rows:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["error"] is None and "lava_error" not in row, (row["error"], row.get("lava_error"))
        assert row["samples"] == 60 and row["lava_samples"] == 2
        assert 0.2 < row["fixed_accuracy"] <= 1 and 0.2 < row["float_accuracy"] <= 1  # trained: above chance
        assert row["mismatches"]["sim_torch"] == 0
        assert set(row["targets_met"]) >= {"spike_ratio", "accuracy", "prediction_agreement", "mismatches"}
        assert row["spike_ratio"] and all(0.3 < ratio < 3 for ratio in row["spike_ratio"].values())
        assert set(row["saturation"]) and all("v_steps" in totals for totals in row["saturation"].values())
    for row in rows[:2]:
        assert 0.5 < row["weight_rounding"]["agreement"] <= 1 and row["weight_rounding"]["weight_bits"] == 8
        assert row["mismatches"]["sim_lava"] == 0 and row["compared_spikes"]["sim_lava"] > 0
        assert row["profile"] == "bso" and row["time_steps"] == 6
        assert set(row["spike_ratio"]) == set(row["spike_precision"]) == set(row["spike_recall"])
        assert all(0 <= p <= 1 for p in row["spike_precision"].values())
    netx = rows[2]
    assert netx["profile"] == "loihi" and netx["netx_mismatches"] == 0 and netx["netx_compared_spikes"] > 0
    assert netx["targets_met"]["netx_mismatches"] is True
    # slayer's forward pass (8-bit weights through pre_hook_fx, integer CUBA dynamics, one step of delay per
    # block) on the same stream as the import (input steps, then one zero step per block) is the netx network
    assert netx["prediction_agreement"] == 1.0 and netx["float_accuracy"] == netx["fixed_accuracy"]
    assert all(ratio == 1.0 for ratio in netx["spike_ratio"].values()), netx["spike_ratio"]

    # the float accuracy is the float backend's on the cached graph, recomputed here independently
    net = build_network("snntorch-mlp", 3, NetworkSizes.quick(), cache)
    assert net.cached and net.framework_accuracy == rows[0]["framework_accuracy"]
    run = run_graph(net.graph, "float", net.test_inputs[:, :60].astype(np.float64), dt=net.dt)
    assert np.mean(run.predictions == net.test_labels[:60]) == pytest.approx(rows[0]["float_accuracy"])
    printed = capsys.readouterr().out
    assert "targets: spike ratio in [0.9, 1.1]" in printed and "snntorch-mlp" in printed and "lavadl-mlp" in printed


def test_deploy_bench_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="networks must be distinct names among"):
        DeployBenchConfig(networks=("keras-mlp",))
    with pytest.raises(ValueError, match="lava_samples must be an integer >= 0"):
        DeployBenchConfig(lava_samples=-1)
    assert DeployBenchConfig(quick=True).samples_for(450) == 60 and DeployBenchConfig().samples_for(450) == 450


def test_round_weights_puts_every_weight_on_its_grid_and_leaves_the_graph() -> None:
    rng = np.random.default_rng(0)
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([5])), "w_rec": nir.Linear(
        weight=rng.normal(size=(5, 5))), "output": nir.Output(output_type=np.array([5]))},
        edges=[("input", "w_rec"), ("w_rec", "output")])
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])), "fc": nir.Affine(
        weight=rng.normal(size=(5, 3)), bias=rng.normal(size=5)), "inner": inner,
        "output": nir.Output(output_type=np.array([5]))},
        edges=[("input", "fc"), ("fc", "inner"), ("inner", "output")])
    before = [graph.nodes["fc"].weight.copy(), inner.nodes["w_rec"].weight.copy()]
    rounded = round_weights(graph, weight_bits=4)
    for original, node in zip(before, (rounded.nodes["fc"], rounded.nodes["inner"].nodes["w_rec"])):
        step = np.abs(original).max() / 7  # 4 bits: 7 levels each side
        levels = node.weight / step
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
        assert np.abs(node.weight - original).max() <= step / 2 + 1e-12 and not np.array_equal(node.weight, original)
    np.testing.assert_array_equal(graph.nodes["fc"].weight, before[0])  # the original graph is untouched
    np.testing.assert_array_equal(rounded.nodes["fc"].bias, graph.nodes["fc"].bias)
    with pytest.raises(ValueError, match="weight_bits must be an integer in"):
        round_weights(graph, weight_bits=1)
