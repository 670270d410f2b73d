"""Bop values: hand-derived steps (flip, tie, no reset) and Larq's form of the moving average."""

from __future__ import annotations

import pytest
import torch

from bso_deploy.optim import Bop, bop_update


def binary(values: list[float]) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def test_hand_computed_two_steps():
    # gamma 0.5, powers of two: exact in float32.
    w = binary([1.0, 1.0, -1.0, -1.0])
    opt = Bop([w], gamma=0.5, threshold=0.25)
    w.grad = torch.tensor([1.0, 0.5, -1.0, 1.0])
    opt.step()
    # m = 0 + 0.5 * (g - 0) = [0.5, 0.25, -0.5, 0.5]; W*m = [0.5, 0.25 (tie), 0.5, -0.5]
    assert torch.equal(w.data, torch.tensor([-1.0, 1.0, 1.0, -1.0]))
    assert torch.equal(opt.state[w]["momentum"], torch.tensor([0.5, 0.25, -0.5, 0.5]))  # no reset
    assert opt.last_flips == [2]
    w.grad = torch.ones(4)
    opt.step(t=3)  # t is accepted and ignored
    # m = m + 0.5 * (1 - m) = [0.75, 0.625, 0.25, 0.75]; W*m = [-0.75, 0.625, 0.25 (tie), -0.75]
    assert torch.equal(opt.state[w]["momentum"], torch.tensor([0.75, 0.625, 0.25, 0.75]))
    assert torch.equal(w.data, torch.tensor([-1.0, -1.0, 1.0, -1.0]))
    assert opt.last_flips == [1]


def test_larq_form_of_momentum_is_bit_exact_and_differs_from_the_convex_form():
    gen = torch.Generator().manual_seed(1)
    gamma = 1e-4
    weight = torch.randint(0, 2, (10_000,), generator=gen).float() * 2 - 1
    grad, momentum = torch.randn(10_000, generator=gen), torch.randn(10_000, generator=gen) * 1e-3
    copies = [weight.clone(), grad.clone(), momentum.clone()]
    new_w, new_m, flipped = bop_update(weight, grad, momentum, gamma=gamma, threshold=1e-4)
    for tensor, copy in zip((weight, grad, momentum), copies):
        assert torch.equal(tensor, copy)  # inputs are not mutated
    larq = momentum + gamma * (grad - momentum)
    assert torch.equal(new_m.view(torch.int32), larq.view(torch.int32))
    # (1 - gamma) * m + gamma * g is the same in exact arithmetic but rounds differently in float32.
    assert not torch.equal(new_m, (1 - gamma) * momentum + gamma * grad)
    assert torch.equal(flipped, weight * larq - 1e-4 > 0)
    assert torch.equal(new_w, torch.where(flipped, -weight, weight))
    assert 0 < int(flipped.sum()) < weight.numel()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": 0.0}, r"gamma.*0 < gamma <= 1"),
        ({"gamma": 1.5}, r"gamma.*0 < gamma <= 1"),
        ({"threshold": -1e-8}, r"threshold.*0 <= threshold < inf"),
        ({"threshold": float("inf")}, r"threshold.*0 <= threshold < inf"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Bop([binary([1.0])], **kwargs)


def test_non_number_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="gamma must be a real number"):
        Bop([binary([1.0])], gamma="0.1")
