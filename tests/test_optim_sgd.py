"""OnlineSGD against torch.optim.SGD, bit for bit, over its options; its fallbacks; hooks run once."""

from __future__ import annotations

import pytest
import torch

from bso_deploy.optim import OnlineSGD

SHAPES = [(13, 7), (7,), (3, 2, 5), (1,)]


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def twins(seed: int, **options):
    generator = torch.Generator().manual_seed(seed)
    values = [torch.randn(shape, generator=generator) for shape in SHAPES]
    ours = [torch.nn.Parameter(v.clone()) for v in values]
    theirs = [torch.nn.Parameter(v.clone()) for v in values]
    return ours, theirs, OnlineSGD(ours, **options), torch.optim.SGD(theirs, **options), generator


OPTIONS = [
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.1},
    {"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-3},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    {"lr": 0.2, "momentum": 0.5, "maximize": True},
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("options", OPTIONS)
def test_steps_are_bit_identical_to_torch_sgd(options, seed):
    ours, theirs, optimizer, reference, generator = twins(seed, **options)
    for step in range(6):
        grads = [torch.randn(shape, generator=generator) for shape in SHAPES]
        for index, (mine, other, grad) in enumerate(zip(ours, theirs, grads)):
            skip = (step + index) % 4 == 3  # some parameters without a gradient in some steps
            mine.grad, other.grad = (None, None) if skip else (grad.clone(), grad.clone())
        optimizer.step()
        reference.step()
        for mine, other in zip(ours, theirs):
            assert torch.equal(bits(mine), bits(other))
            buffer = optimizer.state[mine].get("momentum_buffer")
            expected = reference.state[other].get("momentum_buffer")
            assert (buffer is None) == (expected is None)
            if buffer is not None:
                assert torch.equal(bits(buffer), bits(expected))
    assert optimizer.state_dict()["param_groups"] == reference.state_dict()["param_groups"]


def test_state_dicts_load_into_either_class():
    ours, theirs, optimizer, reference, _ = twins(0, lr=0.1, momentum=0.9)
    for param in ours + theirs:
        param.grad = torch.ones_like(param)
    optimizer.step()
    reference.step()
    loaded = torch.optim.SGD(theirs, lr=0.5, momentum=0.1)
    loaded.load_state_dict(optimizer.state_dict())
    back = OnlineSGD(ours, lr=0.5, momentum=0.1)
    back.load_state_dict(reference.state_dict())
    assert loaded.param_groups[0]["lr"] == back.param_groups[0]["lr"] == 0.1


def test_closure_and_foreach_take_torchs_step_and_hooks_run_once():
    calls = []
    ours, theirs, optimizer, reference, _ = twins(1, lr=0.1, momentum=0.9, foreach=True)
    torch.optim.SGD(theirs, lr=0.1)  # an SGD instance exists, so torch has wrapped SGD.step with its hooks
    optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    for mine, other in zip(ours, theirs):
        mine.grad = other.grad = torch.full_like(mine, 0.5)
    optimizer.step()
    reference.step()
    assert calls == ["pre", "post"]
    loss = optimizer.step(closure=lambda: torch.tensor(3.0))
    reference.step()
    assert loss.item() == 3.0 and calls == ["pre", "post"] * 2
    for mine, other in zip(ours, theirs):
        assert torch.equal(bits(mine), bits(other))
