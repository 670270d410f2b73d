"""`bso-deploy bench train` on a tiny budget: the records, files and measured quantities are right."""

import json

from bso_deploy.bench.train import TrainBenchConfig, run_train_bench

KEYS = {"method", "time_steps", "activation_bytes", "state_bits_per_weight", "checkpoint_bits_per_weight",
        "epoch_seconds", "test_accuracy"}


def test_tiny_bench_writes_records_and_plots(tmp_path, capsys):
    bench = TrainBenchConfig(methods=("tbso", "bptt-ste"), time_steps=(2, 6), epochs=1, out_dir=str(tmp_path))
    records = run_train_bench(bench, progress=False)
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved == records and len(saved) == 4
    assert all(KEYS <= r.keys() for r in saved)
    by = {(r["method"], r["time_steps"]): r for r in saved}
    assert by[("tbso", 6)]["activation_bytes"] == by[("tbso", 2)]["activation_bytes"]
    assert by[("bptt-ste", 6)]["activation_bytes"] >= 2.5 * by[("bptt-ste", 2)]["activation_bytes"]
    # T-BSO: one 32-bit momentum per weight plus T float32 second moments per layer (256 x 256 weights)
    assert by[("tbso", 6)]["state_bits_per_weight"] == 32 + 6 * 32 / (256 * 256)
    # BPTT-STE: 32-bit latent weight + Adam exp_avg and exp_avg_sq, plus Adam's scalar step counter
    assert by[("bptt-ste", 2)]["state_bits_per_weight"] == 96 + 32 / (256 * 256)
    assert by[("tbso", 2)]["checkpoint_bits_per_weight"] == 1.0
    assert by[("bptt-ste", 2)]["checkpoint_bits_per_weight"] == 32.0
    assert (tmp_path / "train_memory.png").exists() and (tmp_path / "train_accuracy.png").exists()
    assert "activation memory" in capsys.readouterr().out
