"""The in-place update rules the binary optimizers call: equal to their pure forms, exact flip counts, and the
one-sum finiteness check (NaN / Inf still refused before anything flips; an overflowing sum is not an error)."""

from __future__ import annotations

import pytest
import torch

from bso_deploy.optim import BINARY_OPTIMIZERS, bop_update, bso_update, tbso_update
from bso_deploy.optim.functional import EXACT_FLOAT32_COUNT, _count, bop_update_, bso_update_, tbso_update_


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous().reshape(-1).view(torch.uint8)


def case(seed: int, shape=(7, 5, 3)):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
    return weight, torch.randn(shape, generator=generator), torch.randn(shape, generator=generator) * 0.3


@pytest.mark.parametrize("seed", range(10))
def test_in_place_forms_equal_the_pure_forms_and_count_their_flips(seed):
    weight, grad, momentum = case(seed)
    threshold = 0.05 * (seed % 4)
    for pure, in_place, options in ((bso_update, bso_update_, {"beta1": 0.4}), (bop_update, bop_update_,
                                                                                   {"gamma": 0.3})):
        new_weight, new_momentum, flipped = pure(weight, grad, momentum, threshold=threshold, **options)
        weight_, momentum_ = weight.clone(), momentum.clone()
        count = in_place(weight_, grad, momentum_, threshold=threshold, **options)
        assert torch.equal(bits(weight_), bits(new_weight)) and torch.equal(bits(momentum_), bits(new_momentum))
        assert count.item() == flipped.sum().item() > 0 and torch.equal(flipped, (weight * new_weight) < 0)
    second_moment = torch.rand(3, generator=torch.Generator().manual_seed(seed))
    new_weight, new_momentum, new_v, flipped = tbso_update(weight, grad, momentum, second_moment[1], beta1=0.4,
                                                           beta2=0.3, threshold=threshold, eps=1e-10)
    weight_, momentum_, v_ = weight.clone(), momentum.clone(), second_moment.clone()
    count, v_t = tbso_update_(weight_, grad, momentum_, v_, 1, beta1=0.4, beta2=0.3, threshold=threshold, eps=1e-10)
    assert torch.equal(bits(weight_), bits(new_weight)) and torch.equal(bits(momentum_), bits(new_momentum))
    assert v_t.item() == new_v.item() == v_[1].item() and v_[0] == second_moment[0] and v_[2] == second_moment[2]
    assert count.item() == flipped.sum().item()


def test_float64_second_moment_step_uses_the_uncast_value():
    # A float64 tensor's v[t] is computed in float64; the float32 state stores it rounded, the flip test uses it
    # unrounded (as the out-of-place reference did).
    weight, grad, momentum = (t.double() for t in case(3))
    second_moment = torch.zeros(2)
    _, v_t = tbso_update_(weight, grad, momentum, second_moment, 0, beta1=0.4, beta2=0.3, threshold=0.1, eps=1e-10)
    assert v_t.dtype == torch.float64 and second_moment[0].item() == torch.tensor(v_t.item()).float().item()


def test_counts_are_exact_beyond_float32s_integers():
    assert _count(torch.ones(1000)).item() == 1000
    ones = torch.ones(EXACT_FLOAT32_COUNT + 3)
    assert torch.ones(EXACT_FLOAT32_COUNT + 3).sum().item() != EXACT_FLOAT32_COUNT + 3  # float32 cannot hold it
    assert _count(ones).item() == EXACT_FLOAT32_COUNT + 3


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
def test_finite_gradients_whose_sum_overflows_are_not_an_error(name):
    weight = torch.nn.Parameter(torch.tensor([1.0, 1.0, -1.0, -1.0]))
    optimizer = BINARY_OPTIMIZERS[name]([weight])
    weight.grad = torch.full((4,), 3e38)  # each entry finite, their float32 sum +Inf
    optimizer.step(t=0)
    # BSO and Bop flip the two +1 entries; T-BSO's v[t] overflows too (g * g), so its scaled margin is 0: no flip.
    expected = [1.0, 1.0, -1.0, -1.0] if name == "tbso" else [-1.0] * 4
    assert optimizer.last_flips == [0 if name == "tbso" else 2] and torch.equal(weight.data, torch.tensor(expected))


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_single_non_finite_entry_among_many_is_refused_before_any_flip(name, bad):
    first, second = (torch.nn.Parameter(case(seed, (64, 64))[0]) for seed in (1, 2))
    optimizer = BINARY_OPTIMIZERS[name]([first, second])
    before = [first.detach().clone(), second.detach().clone()]
    first.grad, second.grad = torch.randn(64, 64) * 1e3, torch.randn(64, 64)
    second.grad[17, 5] = bad
    with pytest.raises(FloatingPointError, match=r"binary parameter 1 \(shape \(64, 64\)\) has 1 non-finite"):
        optimizer.step(t=0)
    assert torch.equal(first.data, before[0]) and torch.equal(second.data, before[1]) and len(optimizer.state) == 0
