"""bso_deploy.training on tiny seeded batches: the loss, the model of a config, the optimizers of a method,
one online step (what flips, what the full-precision step does), one BPTT step, evaluation and an epoch."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bso_deploy.config import TrainConfig
from bso_deploy.encoding import make_encoder
from bso_deploy.layers import binary_layer_names, split_parameters
from bso_deploy.optim import BSO, TBSO, Bop, StepDecay
from bso_deploy.ste import LatentAdam, latent_parameters
from bso_deploy.training import (
    NonFiniteLossError,
    Optimizers,
    build_network,
    evaluate,
    make_optimizers,
    online_loss,
    resolve_device,
    train_bptt_batch,
    train_epoch,
    train_online_batch,
)

INPUT, CLASSES = 6, 3


def tiny(method: str = "bso", **fields) -> tuple[TrainConfig, nn.Module]:
    """A seeded 6-5-4-3 MLP (binary middle layer) and its config."""
    config = TrainConfig(method=method, hidden=(5, 4), seed=1, batch_size=4, **fields)
    return config, build_network(config, (INPUT,), CLASSES)


def batch(seed: int = 0, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [0, 20): strong enough that the first LIF layer spikes at the first step."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, INPUT, generator=generator) * 20, torch.randint(0, CLASSES, (size,), generator=generator)


def test_online_loss_is_weighted_cross_entropy_and_mse_over_time_steps():
    output, target = torch.tensor([[2.0, 0.0]], dtype=torch.float64), torch.tensor([0])
    cross_entropy = math.log(1 + math.exp(-2.0))
    mse = ((2.0 - 1.0) ** 2 + 0.0 ** 2) / 2
    expected = ((1 - 0.25) * cross_entropy + 0.25 * mse) / 4
    assert online_loss(output, target, 2, time_steps=4, mse_weight=0.25).item() == pytest.approx(expected, rel=1e-14)


def test_build_network_is_online_unless_bptt_which_gets_latent_weights():
    _, online = tiny("tbso")
    assert online.online and latent_parameters(online) == []
    _, bptt = tiny("bptt-ste")
    latents = latent_parameters(bptt)
    assert not bptt.online and len(latents) == 1 and latents[0].shape == (4, 5)
    assert set(bptt.layers[2].weight.unique().tolist()) == {-1.0, 1.0}  # the sign of the latent weight


@pytest.mark.parametrize(("method", "kind"), [("tbso", TBSO), ("bso", BSO), ("bop", Bop), ("bptt-ste", LatentAdam)])
def test_each_method_gets_its_binary_optimizer_over_exactly_the_binary_weights(method, kind):
    config, model = tiny(method, fp_optimizer="adam")
    optimizers = make_optimizers(model, config)
    assert type(optimizers.binary) is kind and type(optimizers.full_precision) is torch.optim.Adam
    binary = [p for group in optimizers.binary.param_groups for p in group["params"]]
    fp = [p for group in optimizers.full_precision.param_groups for p in group["params"]]
    expected_binary = latent_parameters(model) if method == "bptt-ste" else split_parameters(model)[0]
    assert [id(p) for p in binary] == [id(p) for p in expected_binary]
    assert {id(p) for p in binary} | {id(p) for p in fp} == {id(p) for p in model.parameters()}
    assert not {id(p) for p in binary} & {id(p) for p in fp}


def test_schedules_decay_threshold_and_momentum_gap_when_asked():
    config, model = tiny("bso", decay_every=2)
    schedules = make_optimizers(model, config).schedules
    assert [type(s) for s in schedules] == [StepDecay, StepDecay]
    assert make_optimizers(model, TrainConfig(method="bso", hidden=(5, 4))).schedules == []


def test_a_model_without_binary_layers_is_refused():
    config, model = tiny("bso", binary="none")
    with pytest.raises(ValueError, match="the model has no binary layers; choose binary='hidden' or 'all'"):
        make_optimizers(model, config)


def test_one_online_step_flips_exactly_the_weights_whose_gradient_has_their_sign():
    # BSO with threshold 0 from zero momentum: m = beta1 g, so W flips where W g > 0 (docs/training.md).
    config, model = tiny("bso", threshold=0.0, time_steps=1, lr=0.05)
    optimizers = make_optimizers(model, config)
    x, y = batch()
    before = copy.deepcopy(model)
    binary = model.layers[2].weight
    seen = {}

    def capture() -> None:  # after backward, before the optimizer step
        seen.update(weight=binary.detach().clone(), grad=binary.grad.clone(),
                    fp={name: (p.detach().clone(), p.grad.clone()) for name, p in model.named_parameters()
                        if p is not binary and p.grad is not None})

    encoder = make_encoder("direct")
    result = train_online_batch(model, x, y, encoder, 0, optimizers, 1, CLASSES, config.mse_weight,
                                after_backward=capture)
    agree = seen["weight"] * seen["grad"] > 0
    assert result.flips == [int(agree.sum())] and result.flips[0] > 0
    torch.testing.assert_close(binary.detach(), torch.where(agree, -seen["weight"], seen["weight"]), rtol=0, atol=0)
    for name, (value, grad) in seen["fp"].items():  # SGD's first step: buffer = grad, p <- p - lr grad
        torch.testing.assert_close(dict(model.named_parameters())[name].detach(), value.add(grad, alpha=-0.05),
                                   rtol=0, atol=0, msg=name)
    before.reset_state()
    output = before.step(x)  # T = 1: the loss and the prediction come from the weights before the step
    assert result.loss == online_loss(output, y, CLASSES, 1, config.mse_weight).item()
    assert result.correct == int((output.argmax(1) == y).sum())


def test_a_threshold_no_momentum_reaches_flips_nothing_over_the_time_steps():
    config, model = tiny("tbso", threshold=1e9, time_steps=3)
    signs = model.layers[2].weight.detach().clone()
    result = train_online_batch(model, *batch(), make_encoder("direct"), 0, make_optimizers(model, config), 3,
                                CLASSES, config.mse_weight)
    assert result.flips == [0] and torch.equal(model.layers[2].weight, signs)
    assert 0 <= result.correct <= 4 and math.isfinite(result.loss)


def test_bptt_sums_the_step_losses_and_steps_once():
    config, model = tiny("bptt-ste", time_steps=2)
    x, y = batch(3)
    before = copy.deepcopy(model)
    latent = latent_parameters(model)[0]
    start = latent.detach().clone()
    result = train_bptt_batch(model, x, y, make_encoder("direct"), 0, make_optimizers(model, config), 2, CLASSES,
                              config.mse_weight)
    before.reset_state()
    outputs = [before.step(x) for _ in range(2)]
    assert result.loss == sum(online_loss(o, y, CLASSES, 2, config.mse_weight) for o in outputs).item()
    assert result.correct == int((torch.stack(outputs).sum(0).argmax(1) == y).sum())
    moved = latent.detach() - start  # one Adam step of size lr on every latent weight with a gradient
    assert torch.all(moved.abs() <= config.ste_lr * (1 + 1e-5)) and bool((moved != 0).any())
    assert len(result.flips) == 1


def test_a_non_finite_loss_stops_with_non_finite_loss_error():
    config, model = tiny("bso")
    with torch.no_grad():
        model.layers[-1].weight.fill_(float("inf"))  # the classifier's current: inf - inf
        model.layers[-1].weight[0] = -float("inf")
    with pytest.raises(NonFiniteLossError, match=r"^the loss became (nan|inf) at time step 0$"):
        train_online_batch(model, *batch(), make_encoder("direct"), 0, make_optimizers(model, config), 2, CLASSES,
                           0.05)


def test_evaluate_is_the_accuracy_of_the_summed_output_and_keeps_the_mode():
    _, model = tiny("bso")
    x, y = batch(5, size=8)
    model.train()
    accuracy = evaluate(model, [(x[:4], y[:4]), (x[4:], y[4:])], make_encoder("direct"), 3, torch.device("cpu"))
    assert model.training
    model.eval()
    model.reset_state()
    summed = sum(model.step(x) for _ in range(3))
    assert accuracy == int((summed.argmax(1) == y).sum()) / 8


def test_an_epoch_reports_loss_accuracy_and_flips_per_binary_layer():
    config, model = tiny("bso", threshold=0.0, time_steps=2, epochs=1)
    x, y = batch(7, size=8)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    record = train_epoch(model, loader, make_encoder("direct"), make_optimizers(model, config), config, CLASSES, 0,
                         torch.device("cpu"), progress=False)
    assert set(record) == {"loss", "train_accuracy", "flips", "flip_rate"}
    assert list(record["flips"]) == binary_layer_names(model) == ["layers.2"]
    steps = 2 * 2  # two batches of two time steps
    assert record["flip_rate"]["layers.2"] == record["flips"]["layers.2"] / (4 * 5 * steps)
    assert record["train_accuracy"] in {k / 8 for k in range(9)} and math.isfinite(record["loss"])


def test_optimizer_state_round_trips():
    config, model = tiny("tbso", decay_every=1)
    optimizers = make_optimizers(model, config)
    train_online_batch(model, *batch(), make_encoder("direct"), 0, optimizers, config.time_steps, CLASSES, 0.05)
    optimizers.end_epoch(1)
    state = optimizers.state_dict()
    fresh: Optimizers = make_optimizers(model, config)
    fresh.load_state_dict(state)
    assert fresh.state_dict()["schedules"] == state["schedules"]
    assert fresh.binary.param_groups[0]["threshold"] == optimizers.binary.param_groups[0]["threshold"]
    for key, value in state["binary"]["state"][0].items():
        assert torch.equal(fresh.state_dict()["binary"]["state"][0][key], value)


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine's answer, made explicit
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda:1' requested but CUDA is not available here; use --device cpu"):
        resolve_device("cuda:1")
