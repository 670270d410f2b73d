"""BSO values (hand-derived and against a transcription of the reference code) and shared plumbing."""

from __future__ import annotations

import io

import pytest
import torch

from bso_deploy.optim import BINARY_OPTIMIZERS, BSO, bso_update


def binary(values: list[float]) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def reference_bso(weight, momentum, grad, beta1, threshold):
    """hamingsi/BSO modules/Bop.py, `reset=True` branch, transcribed; returns W, m and reverse."""
    momentum = (1 - beta1) * momentum + beta1 * grad
    reverse = -torch.sign(weight * momentum - threshold)
    weight = torch.sign(reverse * weight)
    momentum = (reverse + 1) / 2 * momentum
    return weight, momentum, reverse


def test_hand_computed_two_steps_flip_tie_and_reset():
    # momentum 0.5 -> beta1 0.5; all values are powers of two, so float32 arithmetic is exact.
    w = binary([1.0, 1.0, -1.0, -1.0])
    opt = BSO([w], momentum=0.5, threshold=0.25)
    w.grad = torch.tensor([1.0, 0.5, -1.0, 1.0])
    opt.step()
    # m = 0.5 * g = [0.5, 0.25, -0.5, 0.5]; W*m = [0.5, 0.25 (== threshold: tie), 0.5, -0.5]
    assert torch.equal(w.data, torch.tensor([-1.0, 1.0, 1.0, -1.0]))
    assert torch.equal(opt.state[w]["momentum"], torch.tensor([0.0, 0.25, 0.0, 0.5]))  # reset where flipped
    assert opt.last_flips == [2]
    w.grad = torch.tensor([1.0, 1.0, 1.0, 1.0])
    opt.step()
    # m = 0.5 * [0, 0.25, 0, 0.5] + 0.5 = [0.5, 0.625, 0.5, 0.75]; W*m = [-0.5, 0.625, 0.5, -0.75]
    assert torch.equal(w.data, torch.tensor([-1.0, -1.0, -1.0, -1.0]))
    assert torch.equal(opt.state[w]["momentum"], torch.tensor([0.5, 0.0, 0.0, 0.75]))
    assert opt.last_flips == [2]


def test_reference_zeroes_weight_at_a_tie_and_we_keep_it():
    weight, momentum, grad = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.5])
    ref_w, ref_m, _ = reference_bso(weight, momentum, grad, 0.5, 0.25)
    assert ref_w.item() == 0.0 and ref_m.item() == 0.125  # the documented deviation
    new_w, new_m, flipped = bso_update(weight, grad, momentum, beta1=0.5, threshold=0.25)
    assert new_w.item() == 1.0 and new_m.item() == 0.25 and not flipped.item()


def test_functional_does_not_mutate_inputs():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randint(0, 2, (50,), generator=gen).float() * 2 - 1
    grad, momentum = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    copies = [weight.clone(), grad.clone(), momentum.clone()]
    bso_update(weight, grad, momentum, beta1=0.3, threshold=0.1)
    for tensor, copy in zip((weight, grad, momentum), copies):
        assert torch.equal(tensor, copy)


@pytest.mark.parametrize("seed", range(20))
def test_bit_identical_to_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    momentum = [0.5, 0.9, 0.99, 0.999][seed % 4]
    threshold = float(torch.empty(1).uniform_(0.0, 0.05, generator=gen)) * (1.0 - momentum)
    shape = (7, 5, 3)
    w = torch.nn.Parameter(torch.randint(0, 2, shape, generator=gen).float() * 2 - 1)
    ref_w, ref_m = w.detach().clone(), torch.zeros(shape)
    opt = BSO([w], momentum=momentum, threshold=threshold)
    total_flips = 0
    for _ in range(15):
        grad = torch.randn(shape, generator=gen) * 0.1
        ref_w, ref_m, reverse = reference_bso(ref_w, ref_m, grad, 1 - momentum, threshold)
        assert not (reverse == 0).any(), "exact tie: the reference and BSO legitimately differ there"
        w.grad = grad
        opt.step()
        total_flips += opt.last_flips[0]
        assert torch.equal(w.data.view(torch.int32), ref_w.view(torch.int32))
        # torch.equal: the reference's 0 * m gives -0.0 where m < 0, ours +0.0; they compare equal.
        assert torch.equal(opt.state[w]["momentum"], ref_m)
    assert 0 < total_flips < 15 * w.numel()


# --- plumbing shared by all binary optimizers (bso.BinaryOptimizer) ------------------------------------

def make(name, params):
    return BINARY_OPTIMIZERS[name](params)


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
def test_non_binary_parameter_is_rejected_with_count(name):
    good, bad = binary([1.0, -1.0]), binary([1.0, 0.3, -1.0, 2.0])
    opt = make(name, [good, bad])
    good.grad, bad.grad = torch.ones(2), torch.ones(4)
    with pytest.raises(ValueError, match=r"parameter 1 .* has 2 of 4 entries that are not -1.0 or \+1.0"):
        opt.step(t=0)
    assert torch.equal(good.data, torch.tensor([1.0, -1.0]))


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
def test_empty_params_rejected(name):
    with pytest.raises(ValueError, match="empty parameter list"):
        make(name, [])


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_grad_raises_and_flips_nothing(name, bad_value):
    first, second = binary([1.0, -1.0]), binary([1.0, 1.0, -1.0])
    opt = make(name, [first, second])
    first.grad = torch.tensor([1e3, -1e3])  # would flip both entries
    second.grad = torch.tensor([1.0, bad_value, 1.0])
    with pytest.raises(FloatingPointError, match="binary parameter 1"):
        opt.step(t=0)
    assert torch.equal(first.data, torch.tensor([1.0, -1.0]))
    assert torch.equal(second.data, torch.tensor([1.0, 1.0, -1.0]))
    assert len(opt.state) == 0


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
def test_grad_none_skipped_closure_and_last_flips(name):
    skipped, used = binary([1.0, -1.0]), binary([1.0, -1.0, 1.0])
    opt = make(name, [{"params": [skipped]}, {"params": [used]}])
    assert opt.last_flips == []

    def closure():
        used.grad = torch.tensor([1e3, -1e3, -1e3])  # W*m > 0 for the first two entries only
        return torch.tensor(7.0)

    assert opt.step(closure, t=0).item() == 7.0
    assert opt.last_flips == [0, 2]
    assert torch.equal(skipped.data, torch.tensor([1.0, -1.0])) and skipped not in opt.state
    assert torch.equal(used.data, torch.tensor([-1.0, 1.0, 1.0]))
    assert opt.step(t=0) is None


@pytest.mark.parametrize("name", sorted(BINARY_OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name):
    gen = torch.Generator().manual_seed(3)
    w = torch.nn.Parameter(torch.randint(0, 2, (6, 4), generator=gen).float() * 2 - 1)
    opt = make(name, [w])
    grads = [torch.randn(6, 4, generator=gen) * 1e-2 for _ in range(12)]
    for step, grad in enumerate(grads[:5]):
        w.grad = grad
        opt.step(t=step % 2)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = make(name, [w2])
    opt2.load_state_dict(torch.load(buffer))
    for step, grad in enumerate(grads[5:], start=5):
        w.grad, w2.grad = grad, grad.clone()
        opt.step(t=step % 2)
        opt2.step(t=step % 2)
        assert torch.equal(w.data.view(torch.int32), w2.data.view(torch.int32))
        assert opt.last_flips == opt2.last_flips
    for key, value in opt.state[w].items():
        assert value.dtype == opt2.state[w2][key].dtype
        assert torch.equal(value.view(torch.int32), opt2.state[w2][key].view(torch.int32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"momentum": 1.0}, r"momentum.*0 <= momentum < 1"),
        ({"momentum": -0.1}, r"momentum.*0 <= momentum < 1"),
        ({"momentum": float("nan")}, r"momentum.*0 <= momentum < 1"),
        ({"threshold": -1e-9}, r"threshold.*0 <= threshold < inf"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BSO([binary([1.0])], **kwargs)
    with pytest.raises(ValueError, match=match):  # param groups are validated as well
        BSO([{"params": [binary([1.0])], **kwargs}])
