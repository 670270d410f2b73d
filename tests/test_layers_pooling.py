"""linear_spike_op's tiled average pooling against torch's AvgPool2d, bit for bit, forward and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bso_deploy.layers import _tiles, linear_spike_op


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def awkward_values(shape, generator, dtype) -> torch.Tensor:
    """Normal values over 12 decades with exact zeros of both signs, subnormals, ties and, rarely, Inf."""
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    x *= torch.pow(10.0, torch.randint(-6, 6, shape, generator=generator).to(torch.float64))
    pick = torch.rand(shape, generator=generator)
    x[pick < 0.1] = 0.0
    x[(pick >= 0.1) & (pick < 0.2)] = -0.0
    x[(pick >= 0.2) & (pick < 0.25)] = 1e-40 if dtype == torch.float32 else 1e-310
    x[(pick >= 0.25) & (pick < 0.3)] = 0.5
    x[pick > 0.998] = float("inf")
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(12))
def test_tiled_pooling_is_bit_identical_to_avg_pool2d(seed, dtype):
    generator = torch.Generator().manual_seed(seed)
    k = (2, 2, 3, 4)[seed % 4]
    shape = (1 + seed % 3, 1 + seed % 4, k * (1 + seed % 5) + seed % k, k * (2 + seed % 3) + (seed // 2) % k)
    layer = nn.AvgPool2d(k)
    x = awkward_values(shape, generator, dtype)
    if seed % 3 == 0:  # all-negative-zero tiles: torch's zero-initialized sums give +0.0
        x[:, :, :k, :k] = -0.0
    assert _tiles(layer, x) == k
    fast_input, torch_input = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast, reference = linear_spike_op(layer, fast_input), layer(torch_input)
    assert torch.equal(bits(fast), bits(reference))
    grad = awkward_values(tuple(reference.shape), generator, dtype)
    fast.backward(grad)
    reference.backward(grad)
    assert torch.equal(bits(fast_input.grad), bits(torch_input.grad))


def test_spikes_and_traces_pool_exactly_through_a_training_network_shape():
    generator = torch.Generator().manual_seed(7)
    spikes = (torch.rand(16, 8, 28, 28, generator=generator) < 0.2).float()
    trace = spikes + 0.5 * (torch.rand(16, 8, 28, 28, generator=generator) < 0.2).float()
    for x in (spikes, trace):
        assert torch.equal(bits(linear_spike_op(nn.AvgPool2d(2), x)), bits(nn.AvgPool2d(2)(x)))


@pytest.mark.parametrize("layer", [nn.AvgPool2d(2, stride=1), nn.AvgPool2d(2, padding=1),
                                   nn.AvgPool2d(3, ceil_mode=True), nn.AvgPool2d(2, divisor_override=3),
                                   nn.AvgPool2d((2, 3)), nn.Flatten(), nn.Identity()])
def test_other_layers_and_inputs_run_as_themselves(layer):
    x = torch.rand(2, 3, 6, 6)
    assert _tiles(layer, x) is None
    assert torch.equal(bits(linear_spike_op(layer, x)), bits(layer(x)))


def test_half_precision_and_channels_last_inputs_take_torchs_kernel():
    layer = nn.AvgPool2d(2)
    assert _tiles(layer, torch.rand(2, 3, 4, 4, dtype=torch.float16)) is None
    channels_last = torch.rand(2, 3, 4, 4).to(memory_format=torch.channels_last)
    assert _tiles(layer, channels_last) is None
    assert torch.equal(linear_spike_op(layer, channels_last), layer(channels_last))
