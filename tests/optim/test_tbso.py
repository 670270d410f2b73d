"""T-BSO values: hand-derived sequence, exact tie, per-t second moment, and the reference transcription."""

from __future__ import annotations

import pytest
import torch

from bso_deploy.optim import TBSO, tbso_update


def binary(values: list[float]) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def reference_tbso(weight, momentum, second_moment, grad, t, beta1, beta2, threshold, eps=1e-10):
    """hamingsi/BSO modules/Bop.py, default (`reset=False`) branch, transcribed; mutates second_moment."""
    momentum = (1 - beta1) * momentum + beta1 * grad
    second_moment[t] = (1 - beta2) * second_moment[t] + torch.mean(beta2 * torch.mul(grad, grad))
    reverse = -torch.sign(weight * momentum / (torch.sqrt(second_moment[t]) + eps) - threshold)
    return torch.sign(reverse * weight), momentum, reverse


def test_hand_computed_sequence_over_two_time_steps():
    # beta1 = beta2 = 0.5; gradients chosen so every v[t] has an exact square root; eps = 1e-10 vanishes
    # when added to sqrt(v[t]) in {0.5, 1} in float32.
    w = binary([1.0, 1.0, -1.0, -1.0])
    opt = TBSO([w], momentum=0.5, variance_decay=0.5, threshold=0.5, time_steps=2, eps=1e-10)
    state = opt.state[w]

    w.grad = torch.tensor([2.0, 0.0, -2.0, 0.0])
    opt.step(t=0)
    # m = [1, 0, -1, 0]; v[0] = mean(0.5 * [4, 0, 4, 0]) = 1; W*m/1 - 0.5 = [0.5, -0.5, 0.5, -0.5]
    assert torch.equal(w.data, torch.tensor([-1.0, 1.0, 1.0, -1.0]))
    assert torch.equal(state["momentum"], torch.tensor([1.0, 0.0, -1.0, 0.0]))  # no reset
    assert torch.equal(state["second_moment"], torch.tensor([1.0, 0.0]))
    assert opt.last_flips == [2]

    w.grad = torch.tensor([0.0, 1.0, 0.0, -1.0])
    opt.step(t=1)
    # m = [0.5, 0.5, -0.5, -0.5]; v[1] = mean(0.5 * [0, 1, 0, 1]) = 0.25, v[0] unchanged;
    # W*m = [-0.5, 0.5, -0.5, 0.5]: 0.5 ties the bare threshold, but sqrt(v[1]) = 0.5 scales it to 0.25.
    assert torch.equal(w.data, torch.tensor([-1.0, -1.0, 1.0, 1.0]))
    assert torch.equal(state["momentum"], torch.tensor([0.5, 0.5, -0.5, -0.5]))
    assert torch.equal(state["second_moment"], torch.tensor([1.0, 0.25]))

    w.grad = torch.tensor([-2.0, 0.0, 0.0, 0.0])
    opt.step(t=0)
    # m = [-0.75, 0.25, -0.25, -0.25]; v[0] = 0.5 * 1 + mean(0.5 * [4, 0, 0, 0]) = 1, v[1] unchanged;
    # W*m = [0.75, -0.25, -0.25, -0.25] -> only the first exceeds 0.5
    assert torch.equal(w.data, torch.tensor([1.0, -1.0, 1.0, 1.0]))
    assert torch.equal(state["momentum"], torch.tensor([-0.75, 0.25, -0.25, -0.25]))
    assert torch.equal(state["second_moment"], torch.tensor([1.0, 0.25]))
    assert state["second_moment"].dtype == torch.float32 and opt.last_flips == [1]


def test_exact_tie_does_not_flip_and_reference_zeroes_it():
    weight, momentum, grad = torch.tensor([1.0, -1.0]), torch.zeros(2), torch.tensor([1.0, 1.0])
    # m = 0.5 * g = 0.5; v = mean(0.5 * 1) = 0.5 -> sqrt not exact, so use beta2 = 1: v = 1, W*m = +-0.5
    new_w, new_m, new_v, flipped = tbso_update(
        weight, grad, momentum, torch.tensor(0.0), beta1=0.5, beta2=1.0, threshold=0.5, eps=1e-10
    )
    assert new_v.item() == 1.0 and torch.equal(new_m, torch.tensor([0.5, 0.5]))
    assert torch.equal(new_w, weight) and not flipped.any()
    ref_w, _, _ = reference_tbso(weight, momentum, torch.zeros(1), grad, 0, 0.5, 1.0, 0.5)
    assert torch.equal(ref_w, torch.tensor([0.0, -1.0]))  # the documented deviation


def test_eps_is_added_to_sqrt_v_which_matters_when_v_t_is_zero():
    # v[t] = 0 (only zero gradients seen at this t): the denominator is eps = 0.25, not sqrt(eps) = 0.5.
    weight, momentum = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.5])
    new_w, new_m, new_v, flipped = tbso_update(
        weight, torch.zeros(2), momentum, torch.tensor(0.0), beta1=0.5, beta2=0.5, threshold=0.75, eps=0.25
    )
    # m = 0.25; W*m / 0.25 - 0.75 = [0.25, -1.75]
    assert new_v.item() == 0.0 and torch.equal(new_m, torch.tensor([0.25, 0.25]))
    assert torch.equal(flipped, torch.tensor([True, False]))
    assert torch.equal(new_w, torch.tensor([-1.0, -1.0]))


def test_near_tie_is_resolved_by_the_divided_form_like_the_reference():
    # W*m / 3 - threshold > 0 in float32 (and in exact arithmetic), but the algebraically equal
    # W*m - threshold * 3 rounds to 0: the expression form decides flips at near-ties.
    momentum, threshold = torch.tensor([0.7481282949447632]), 0.2493760883808136
    assert not (momentum - torch.tensor(threshold) * 3.0 > 0).item()
    # beta1 = beta2 = 0 keep m and v = 9 (sqrt 3; 3 + 1e-10 == 3 in float32) as given.
    new_w, _, _, flipped = tbso_update(
        torch.ones(1), torch.zeros(1), momentum, torch.tensor(9.0), beta1=0.0, beta2=0.0,
        threshold=threshold, eps=1e-10,
    )
    assert flipped.item() and new_w.item() == -1.0
    ref_w, _, _ = reference_tbso(
        torch.ones(1), momentum, torch.tensor([9.0]), torch.zeros(1), 0, 0.0, 0.0, threshold
    )
    assert ref_w.item() == -1.0


def test_functional_does_not_mutate_inputs():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randint(0, 2, (50,), generator=gen).float() * 2 - 1
    grad, momentum, v_t = torch.randn(50, generator=gen), torch.randn(50, generator=gen), torch.tensor(0.3)
    copies = [weight.clone(), grad.clone(), momentum.clone(), v_t.clone()]
    tbso_update(weight, grad, momentum, v_t, beta1=0.3, beta2=0.2, threshold=0.1, eps=1e-10)
    for tensor, copy in zip((weight, grad, momentum, v_t), copies):
        assert torch.equal(tensor, copy)


@pytest.mark.parametrize("seed", range(20))
def test_bit_identical_to_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    momentum = [0.5, 0.9, 0.99, 0.999][seed % 4]
    variance_decay = [0.5, 0.9, 0.999, 0.99999][seed // 4 % 4]
    threshold = float(torch.empty(1).uniform_(0.0, 1.0, generator=gen)) * (1.0 - momentum)
    time_steps, shape = 1 + seed % 4, (6, 4, 3)
    w = torch.nn.Parameter(torch.randint(0, 2, shape, generator=gen).float() * 2 - 1)
    ref_w, ref_m, ref_v = w.detach().clone(), torch.zeros(shape), torch.zeros(time_steps)
    opt = TBSO(
        [w], momentum=momentum, variance_decay=variance_decay, threshold=threshold, time_steps=time_steps
    )
    total_flips = 0
    for step in range(16):
        t = step % time_steps
        grad = torch.randn(shape, generator=gen) * float(torch.empty(1).uniform_(0.01, 1.0, generator=gen))
        ref_w, ref_m, reverse = reference_tbso(ref_w, ref_m, ref_v, grad, t, 1 - momentum, 1 - variance_decay,
                                               threshold)
        assert not (reverse == 0).any(), "exact tie: the reference and TBSO legitimately differ there"
        w.grad = grad
        opt.step(t=t)
        total_flips += opt.last_flips[0]
        state = opt.state[w]
        assert torch.equal(w.data.view(torch.int32), ref_w.view(torch.int32))
        assert torch.equal(state["momentum"].view(torch.int32), ref_m.view(torch.int32))
        assert torch.equal(state["second_moment"].view(torch.int32), ref_v.view(torch.int32))
    assert 0 < total_flips < 16 * w.numel()


@pytest.mark.parametrize("t", [None, -1, 3, 1.0, True])
def test_time_step_required_and_in_range(t):
    w = binary([1.0, -1.0])
    opt = TBSO([w], time_steps=3)
    w.grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"t, an int in \[0, 2\] \(time_steps=3\)"):
        opt.step(t=t)
    assert torch.equal(w.data, torch.tensor([1.0, -1.0])) and len(opt.state) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"momentum": 1.0}, r"momentum.*0 <= momentum < 1"),
        ({"variance_decay": 1.0}, r"variance_decay.*0 <= variance_decay < 1"),
        ({"variance_decay": -0.5}, r"variance_decay.*0 <= variance_decay < 1"),
        ({"threshold": -1.0}, r"threshold.*0 <= threshold < inf"),
        ({"time_steps": 0}, r"time_steps.*integer >= 1"),
        ({"time_steps": 2.5}, r"time_steps.*integer >= 1"),
        ({"eps": 0.0}, r"eps.*0 < eps < inf"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TBSO([binary([1.0])], **kwargs)


def test_second_moment_float32_on_param_device_and_after_load():
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = TBSO([w], time_steps=3)
    w.grad = torch.tensor([0.5, 0.25], dtype=torch.float64)
    opt.step(t=2)
    second_moment = opt.state[w]["second_moment"]
    assert second_moment.dtype == torch.float32 and second_moment.shape == (3,)
    assert second_moment.device == w.device
    opt2 = TBSO([torch.nn.Parameter(w.detach().clone())], time_steps=3)
    opt2.load_state_dict(opt.state_dict())  # torch casts state to the param dtype; TBSO casts back
    (state2,) = opt2.state.values()
    assert state2["second_moment"].dtype == torch.float32
    assert torch.equal(state2["second_moment"], second_moment)
