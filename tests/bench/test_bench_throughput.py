"""``python -m bso_deploy.bench.throughput`` on tiny settings, for real (no timed assertions), and the snnTorch
baseline's batch step: the once-per-batch one-hot leaves its training bit-identical."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from conftest import require

from bso_deploy.bench.snntorch_baseline import snntorch_network, train_snntorch_batch
from bso_deploy.bench.throughput import BASELINE, ThroughputConfig, main
from bso_deploy.config import TrainConfig
from bso_deploy.encoding import make_encoder
from bso_deploy.training import build_network, online_loss


def test_throughput_command_measures_every_trainer(tmp_path, capsys):
    require("snntorch")
    out = tmp_path / "throughput.json"
    assert main(["--models", "mlp,cnn", "--methods", f"tbso,bop,{BASELINE}", "--time-steps", "2", "--batch-size",
                 "4", "--batches", "1", "--rounds", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(r["model"], r["method"]) for r in report["rows"]] == [
        (m, method) for m in ("mlp", "cnn") for method in ("tbso", "bop", BASELINE)]
    for row in report["rows"]:
        assert len(row["wall_per_round"]) == len(row["cpu_per_round"]) == 2
        assert all(math.isfinite(v) and v > 0 for v in row["wall_per_round"] + row["cpu_per_round"])
    assert [(r["model"], r["method"]) for r in report["ratios"]] == [
        (m, method) for m in ("mlp", "cnn") for method in ("tbso", "bop")]
    assert report["command"].startswith("python -m bso_deploy.bench.throughput --models mlp,cnn")
    assert "cpu ratio" in capsys.readouterr().out


@pytest.mark.parametrize(("fields", "message"), [
    ({"methods": ("tbso",)}, "must include snntorch-bptt"),
    ({"models": ("vgg",)}, "models must be distinct names"),
    ({"rounds": 0}, "rounds must be an integer >= 1"),
])
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        ThroughputConfig(**fields)


def test_snntorch_batch_with_the_shared_one_hot_trains_as_before():
    require("snntorch")
    config = TrainConfig(dataset="digits", hidden=(12, 10), time_steps=3)
    network = snntorch_network(build_network(config, (16,), 4))
    reference = copy.deepcopy(network)
    optimizer, reference_optimizer = (torch.optim.Adam(n.parameters(), lr=1e-2) for n in (network, reference))
    encoder = make_encoder("rate", seed=3)
    generator = torch.Generator().manual_seed(5)
    for key in range(3):
        x, y = torch.rand(8, 16, generator=generator), torch.randint(0, 4, (8,), generator=generator)
        loss = train_snntorch_batch(network, optimizer, x, y, encoder, key, 3, 4, config.mse_weight)
        reference.reset_state()  # the step before the one-hot was shared: online_loss builds it every step
        reference_optimizer.zero_grad(set_to_none=True)
        expected = sum(online_loss(reference.step(encoder(x, t, key)), y, 4, 3, config.mse_weight) for t in range(3))
        expected.backward()
        reference_optimizer.step()
        assert loss == float(expected.item())
    for mine, theirs in zip(network.parameters(), reference.parameters(), strict=True):
        assert torch.equal(mine.detach().reshape(-1).view(torch.uint8), theirs.detach().reshape(-1).view(torch.uint8))
