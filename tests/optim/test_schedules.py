"""StepDecay and CosineLR: values at each epoch, validation and state_dict."""

from __future__ import annotations

import math

import pytest
import torch

from bso_deploy.optim import BINARY_OPTIMIZERS, BSO, TBSO, Bop, CosineLR, StepDecay


def binary_param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([1.0, -1.0]))


def test_bso_threshold_and_momentum_decay_every_50_epochs():
    opt = BSO([binary_param()], momentum=0.999, threshold=1e-6)
    threshold_decay = StepDecay(opt, "threshold", every=50)
    momentum_decay = StepDecay(opt, "one_minus_momentum", every=50)
    seen = {}
    for epoch in range(151):
        threshold_decay.step(epoch)
        momentum_decay.step(epoch)
        seen[epoch] = (opt.param_groups[0]["threshold"], opt.param_groups[0]["momentum"])
    assert seen[0] == seen[49] == (1e-6, 0.999)
    assert seen[50] == seen[99] == (0.1 * 1e-6, 1.0 - 0.1 * (1.0 - 0.999))
    assert seen[150][0] == 0.1 * (0.1 * (0.1 * 1e-6))
    assert seen[150][0] == pytest.approx(1e-9, rel=1e-12)
    assert 1.0 - seen[150][1] == pytest.approx(1e-6, rel=1e-9)


def test_bop_one_minus_momentum_acts_on_gamma_and_tbso_threshold():
    bop = Bop([binary_param()], gamma=1e-4, threshold=1e-8)
    decay = StepDecay(bop, "one_minus_momentum", every=20, factor=0.5)
    for epoch in range(41):
        decay.step(epoch)
    assert bop.param_groups[0]["gamma"] == 0.5 * (0.5 * 1e-4)
    assert bop.param_groups[0]["threshold"] == 1e-8
    tbso = TBSO([{"params": [binary_param()]}, {"params": [binary_param()], "threshold": 1e-6}])
    decay = StepDecay(tbso, "threshold", every=3)
    for epoch in range(7):
        decay.step(epoch)
    assert [group["threshold"] for group in tbso.param_groups] == [0.1 * (0.1 * 5e-7), 0.1 * (0.1 * 1e-6)]
    assert tbso.param_groups[0]["momentum"] == 0.999


def test_repeated_epoch_decays_once_and_backwards_raises():
    opt = BSO([binary_param()], threshold=1.0)
    decay = StepDecay(opt, "threshold", every=2, factor=0.5)
    decay.step(2)
    decay.step(2)
    assert opt.param_groups[0]["threshold"] == 0.5
    with pytest.raises(ValueError, match="before the last epoch"):
        decay.step(1)


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
def test_state_dict_round_trip(name):
    opt = BINARY_OPTIMIZERS[name]([binary_param()])
    decay = StepDecay(opt, "one_minus_momentum", every=4)
    for epoch in range(6):
        decay.step(epoch)
    saved_opt, saved_decay = opt.state_dict(), decay.state_dict()
    assert saved_decay == {"name": "one_minus_momentum", "every": 4, "factor": 0.1, "last_epoch": 5}
    opt2 = BINARY_OPTIMIZERS[name]([binary_param()])
    opt2.load_state_dict(saved_opt)
    decay2 = StepDecay(opt2, "one_minus_momentum", every=1, factor=0.5)
    decay2.load_state_dict(saved_decay)
    for epoch in range(6, 13):
        decay.step(epoch)
        decay2.step(epoch)
        hyperparameters = [{k: v for k, v in o.param_groups[0].items() if k != "params"} for o in (opt, opt2)]
        assert hyperparameters[0] == hyperparameters[1]
    with pytest.raises(ValueError, match="not 'threshold'"):
        StepDecay(opt2, "threshold", every=1).load_state_dict(saved_decay)


def test_validation():
    opt = BSO([binary_param()])
    with pytest.raises(ValueError, match="valid names: threshold, one_minus_momentum"):
        StepDecay(opt, "lr", every=50)
    with pytest.raises(ValueError, match="every"):
        StepDecay(opt, "threshold", every=0)
    with pytest.raises(ValueError, match="factor"):
        StepDecay(opt, "threshold", every=5, factor=0.0)
    with pytest.raises(ValueError, match="epoch"):
        StepDecay(opt, "threshold", every=5).step(-1)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="has no 'threshold'"):
        StepDecay(sgd, "threshold", every=5)


def test_cosine_lr_follows_the_half_cosine_to_zero_and_repeats_nothing():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    schedule = CosineLR(opt, total_epochs=4)
    rates = []
    for epoch in range(1, 6):
        schedule.step(epoch)
        schedule.step(epoch)  # a repeated epoch changes nothing
        rates.append(opt.param_groups[0]["lr"])
    assert rates == [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4)] + [0.0]
    assert rates[1] == pytest.approx(0.05) and rates[3] == 0.0
    with pytest.raises(ValueError, match="epoch 2 is before the last epoch seen, 5"):
        schedule.step(2)


def test_cosine_lr_state_dict_restores_the_rate_of_the_completed_epochs():
    def make(total):
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
        return opt, CosineLR(opt, total_epochs=total)

    opt, schedule = make(6)
    for epoch in (1, 2):
        schedule.step(epoch)
    state = schedule.state_dict()
    assert state == {"name": "cosine_lr", "base_lrs": [1e-3], "total_epochs": 6, "last_epoch": 2}
    fresh_opt, fresh = make(6)
    fresh_opt.param_groups[0]["lr"] = 123.0  # whatever the optimizer's state said
    fresh.load_state_dict(state)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 1e-3 * 0.75
    fresh.step(3)
    schedule.step(3)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="not 'cosine_lr'"):
        fresh.load_state_dict(StepDecay(BSO([binary_param()]), "threshold", every=1).state_dict())


@pytest.mark.parametrize("total", [0, -1, 2.5, True])
def test_cosine_lr_validation(total):
    with pytest.raises(ValueError, match="Invalid total_epochs"):
        CosineLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), total_epochs=total)
    with pytest.raises(ValueError, match="has no 'lr'"):
        CosineLR(BSO([binary_param()]), total_epochs=3)
