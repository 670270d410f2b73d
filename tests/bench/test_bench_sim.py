"""`run_sim_bench` on a tiny config: parity of the backends (checked inside the bench) and the records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require_lava

from bso_deploy.bench.sim import (
    SimBenchConfig,
    build_bso_network,
    build_loihi_network,
    check_identical_spikes,
    check_sim_torch,
    digits_images,
    make_inputs,
    run_sim_bench,
)
from bso_deploy.bench.sim_conv import CONV_NETWORK

REQUIRED = {"backend", "mode", "batch", "samples_per_second", "time_steps", "network", "profile", "us_per_sample",
            "steps"}


def test_tiny_sim_bench_writes_records(tmp_path, capsys) -> None:
    require_lava()
    config = SimBenchConfig(time_steps=3, batch=4, repeats=1, lava_streamed_samples=2, lava_per_sample_runs=1,
                            epochs=1, hidden=(16, 16), lava_copies=3, out_dir=str(tmp_path), conv_samples=2)
    from bso_deploy.hardware.lava.deploy import deploy

    records = run_sim_bench(config, progress=False, lava_deploy=deploy)  # our own Lava processes, for real
    bso, loihi = config.bso_network, config.loihi_network
    assert (bso, loihi) == ("digits-tbso-64-16-16-10", "mlp-64-16-16-10-untrained")
    written = json.loads((tmp_path / "sim.json").read_text())
    assert written == records
    assert (tmp_path / "sim.png").stat().st_size > 0
    assert [(r["backend"], r["mode"], r["batch"], r["network"]) for r in records] == [
        ("sim", "batched", 1, bso), ("sim", "batched", 4, bso), ("sim", "one_shot", 4, bso),
        ("torch", "batched", 1, bso), ("torch", "batched", 4, bso),
        ("sim", "batched", 4, loihi), ("lava", "streamed", 2, loihi),
        ("lava", "per_sample", 1, loihi), ("lava", "streamed", 4, bso), ("lava", "streamed", 4, bso),
        ("sim", "batched", 2, CONV_NETWORK), ("torch", "batched", 2, CONV_NETWORK),
        ("float", "batched", 2, CONV_NETWORK), ("float", "batched", 2, CONV_NETWORK)]
    conv = records[-4:]
    records = records[:-4]
    for record in records:
        assert REQUIRED <= set(record)
        assert record["samples_per_second"] > 0 and record["time_steps"] == 3
        assert record["profile"] == ("bso" if record["network"] == bso else "loihi")
        assert record["steps"] == 3 + 3  # two hidden layers and the readout: latency 3
    printed = capsys.readouterr().out
    assert "dense floor" in printed and "vs Lava streamed" in printed and "built-in LIF + Dense" in printed
    summary = json.loads((tmp_path / "sim_summary.json").read_text())
    sim = next(r for r in records if (r["backend"], r["mode"], r["batch"], r["network"]) == (
        "sim", "batched", 4, bso))
    assert summary["sim_over_floor"] == pytest.approx(sim["us_per_sample"] / summary["floor_us"])
    assert summary["macs_per_sample"] == (64 * 16 + 16 * 16 + 16 * 10) * 6 and summary["samples"] == 4
    assert 0 < min(summary["spike_rates"]) and summary["lava_streamed_over_sim"] > 0
    assert summary["step_loop_over_sim"] > 0 and "vs the plain step loop" in printed  # timed here, not in tests
    assert [r.get("dtype") for r in conv] == [None, None, "float32", "float64"]
    for record in conv:  # the conv rows: fixed backends with the latency's zero steps, the float model without
        assert REQUIRED <= set(record) and record["profile"] == "bso" and record["inputs"]
        assert record["steps"] == 3 + (0 if record["backend"] == "float" else 3) and record["samples_per_second"] > 0
    sim_us, float_us = conv[0]["us_per_sample"], conv[2]["us_per_sample"]
    assert summary["conv_sim_over_float32"] == pytest.approx(sim_us / float_us)
    assert summary["conv_sim_minutes_for_10k"] == pytest.approx(sim_us * 1e-6 * 10_000 / 60)
    assert "simulator vs float torch" in printed and summary["conv_samples"] == 2
    deployed, copies = records[-2:]
    assert "copies" not in deployed and copies["copies"] == 3  # the ratio below uses the single-copy row
    assert deployed["processes"] == "bso-deploy BinarySynapse + BsoNeuron" and deployed["compile_seconds"] > 0
    assert deployed["us_per_step"] * deployed["steps"] == pytest.approx(deployed["us_per_sample"])
    assert summary["lava_deployed_over_sim"] == pytest.approx(deployed["us_per_sample"] / sim["us_per_sample"])
    assert "our Lava processes streaming the same bso network" in printed and "3 copies" in printed
    assert summary["lava_deployed_3_copies_over_sim"] == pytest.approx(copies["us_per_sample"] / sim["us_per_sample"])


def test_bench_networks_are_active_and_agree_across_backends() -> None:
    require_lava()
    config = SimBenchConfig(time_steps=3, epochs=1, hidden=(32, 32))
    images, _ = digits_images(3)
    bso_net, loihi_net = build_bso_network(config), build_loihi_network(config)
    assert bso_net.profile == "bso" and loihi_net.profile == "loihi"
    assert [layer.binary for layer in bso_net.layers] == [False, True, False]
    assert {layer.reset for layer in bso_net.layers[:-1]} == {"subtract"}
    bso_inputs, loihi_inputs = make_inputs(bso_net, images, 3), make_inputs(loihi_net, images, 3)
    result = check_sim_torch(bso_net, bso_inputs)
    assert all(spikes.any() for spikes in result.spikes[:-1])  # the hidden layers are active: not vacuous
    check_identical_spikes(loihi_net, loihi_inputs, lava_samples=3)
    assert np.asarray(loihi_inputs).max() > 0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="epochs"):
        SimBenchConfig(epochs=0)
    with pytest.raises(ValueError, match="hidden"):
        SimBenchConfig(hidden=())
    with pytest.raises(ValueError, match="conv_samples must be an integer >= 0"):
        SimBenchConfig(conv_samples=-1)
