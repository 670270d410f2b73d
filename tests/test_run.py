"""Training runs: files written, exact resume, NaN/Inf stop, bad names, the command line."""

import json
import sys

import pytest
import torch

from bso_deploy.checkpoint import load_checkpoint
from bso_deploy.cli import main
from bso_deploy.config import TrainConfig
from bso_deploy.extras import MissingExtraError
from bso_deploy.run import TrainingRun
from bso_deploy.training import NonFiniteLossError

SMALL = dict(dataset="digits", time_steps=2, batch_size=128, hidden=(32, 32))


def state_of(run: TrainingRun) -> dict:
    state = {f"model.{k}": v.clone() for k, v in run.model.state_dict().items()}
    for index, p in enumerate(run.optimizers.binary.param_groups[0]["params"]):
        for key, value in run.optimizers.binary.state[p].items():
            state[f"binary.{index}.{key}"] = value.clone()
    for index, p in enumerate(run.optimizers.full_precision.param_groups[0]["params"]):
        for key, value in run.optimizers.full_precision.state[p].items():
            state[f"fp.{index}.{key}"] = value.clone()
    return state


@pytest.mark.parametrize("method,encoder,schedule,batchnorm", [
    ("tbso", "direct", "constant", "shared"), ("bso", "rate", "constant", "shared"),
    ("bop", "direct", "constant", "shared"), ("bptt-ste", "direct", "constant", "shared"),
    ("tbso", "direct", "cosine", "per-step"), ("bptt-ste", "rate", "cosine", "running")])
def test_resume_continues_exactly(tmp_path, method, encoder, schedule, batchnorm):
    config = TrainConfig(method=method, encoder=encoder, epochs=3, decay_every=2, lr_schedule=schedule,
                         batchnorm=batchnorm, **SMALL)
    straight = TrainingRun.create(config, tmp_path / "straight")
    straight.fit(progress=False)

    interrupted = TrainingRun.create(TrainConfig(**{**config.__dict__, "epochs": 1}), tmp_path / "resumed")
    interrupted.fit(progress=False)
    resumed = TrainingRun.resume(tmp_path / "resumed", epochs=3)
    assert resumed.epoch == 1
    resumed.fit(progress=False)

    expected, got = state_of(straight), state_of(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert [e["loss"] for e in straight.history] == [e["loss"] for e in resumed.history]
    learning_rates = [[group["lr"] for group in run.optimizers.full_precision.param_groups]
                      for run in (straight, resumed)]
    assert learning_rates[0] == learning_rates[1]
    if schedule == "cosine":  # after 3 of 3 epochs the cosine is at 0
        assert learning_rates[0] == [0.0]


def test_files_and_metrics(tmp_path):
    run = TrainingRun.create(TrainConfig(epochs=2, **SMALL), tmp_path)
    metrics = run.fit(progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"] == saved["epochs"][-1]["test_accuracy"]
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    record = saved["epochs"][0]
    assert {"loss", "train_accuracy", "test_accuracy", "flip_rate", "flips", "seconds",
            "train_eval_accuracy"} <= record.keys()
    assert 0.0 <= record["train_eval_accuracy"] <= 1.0
    subset = run.train_eval_loader()  # fixed by the seed: the same images every time
    assert len(subset.dataset) == 1000 and subset.dataset.indices == run.train_eval_loader().dataset.indices
    assert list(record["flip_rate"]) == ["layers.2"]
    assert (tmp_path / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = load_checkpoint(tmp_path / "checkpoint.pt")
    assert document["epoch"] == 2
    packed = document["binary"]["layers.2.weight"]
    assert packed["bits"].dtype == torch.uint8 and packed["bits"].numel() == 32 * 32 // 8


def test_without_matplotlib_a_plotting_run_fails_before_training(tmp_path, monkeypatch):
    run = TrainingRun.create(TrainConfig(epochs=1, **SMALL), tmp_path)
    for name in ["matplotlib", *(name for name in sys.modules if name.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)  # matplotlib absent
    with pytest.raises(MissingExtraError, match=r"pip install 'bso-deploy\[plots\]'"):
        run.fit(progress=False)
    assert run.epoch == 0 and not (tmp_path / "checkpoint.pt").exists()
    run.fit(progress=False, plot=False)  # without plots the run needs no matplotlib
    assert run.epoch == 1 and not (tmp_path / "training.png").exists()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = TrainingRun.create(TrainConfig(epochs=2, **SMALL), tmp_path)
    run.fit(progress=False)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    resumed = TrainingRun.resume(tmp_path, epochs=3)
    with torch.no_grad():
        resumed.model.layers[-1].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        resumed.fit(progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "stopped in epoch 3" in metrics["stopped"]


@pytest.mark.parametrize("flag,value,valid", [("--dataset", "imagenet", "digits"), ("--method", "adam", "tbso"),
                                              ("--model", "resnet", "mlp")])
def test_cli_rejects_unknown_names_listing_valid_ones(tmp_path, capsys, flag, value, valid):
    code = main(["train", flag, value, "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert value in err and valid in err


def test_cli_trains_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--epochs", "1", "--time-steps", "2", "--hidden", "16,16", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["test_accuracy"] > 0.5
    assert main(["train", "--resume", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["completed_epochs"] == 2


def test_cli_missing_checkpoint_on_resume(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
