"""Binary layers, the OTTT gradient dL/dW[t] = delta[t] (outer) trace[t], and the BatchNorm variants
(per-step statistics, running-statistics forward)."""

import pytest
import torch
from torch import nn

from bso_deploy.layers import (
    BinaryConv2d,
    BinaryLinear,
    RunningBatchNorm2d,
    StepBatchNorm1d,
    StepBatchNorm2d,
    split_parameters,
    synapse_forward,
)
from bso_deploy.models import build_mlp, build_vgg
from bso_deploy.neuron import LIF, LIFParameters


def test_binary_weights_are_plus_minus_one_and_forward_uses_them():
    layer = BinaryLinear(5, 3, generator=torch.Generator().manual_seed(1))
    assert set(layer.weight.unique().tolist()) == {-1.0, 1.0}
    x = torch.randn(2, 5)
    torch.testing.assert_close(layer(x), x @ layer.weight.t(), rtol=0, atol=0)
    conv = BinaryConv2d(2, 4, 3, padding=1, generator=torch.Generator().manual_seed(2))
    assert set(conv.weight.unique().tolist()) == {-1.0, 1.0}


def test_split_parameters_separates_binary_from_full_precision():
    model = build_mlp((6, 8, 8, 3), binary="hidden")
    binary, full = split_parameters(model)
    assert len(binary) == 1 and binary[0].shape == (8, 8)
    assert all(p is not binary[0] for p in full)
    assert len(binary) + len(full) == len(list(model.parameters()))


def test_ottt_gradient_closed_form_two_layer_network():
    """In a tiny net 3 -> LIF(4) -> binary 4 -> 2, the binary weight gradient at each step equals
    delta[t] outer trace[t], with trace[t] = lambda trace[t-1] + s[t] of the hidden LIF layer."""
    torch.manual_seed(0)
    first = nn.Linear(3, 4)
    with torch.no_grad():
        first.weight.mul_(4.0)  # make the hidden layer spike
    lif = LIF(LIFParameters())
    second = BinaryLinear(4, 2, generator=torch.Generator().manual_seed(3))
    decay = LIFParameters().decay
    expected_trace = torch.zeros(5, 4)
    any_spike = False
    for _ in range(6):
        x = torch.rand(5, 3)
        spikes = lif(first(x))
        expected_trace = decay * expected_trace + spikes.detach()
        torch.testing.assert_close(lif.trace, expected_trace, rtol=0, atol=0)
        out = synapse_forward(second, spikes, lif.trace)
        target = torch.randn(5, 2)
        second.weight.grad = None
        out.retain_grad()
        loss = ((out - target) ** 2).sum()
        loss.backward()
        delta = out.grad
        torch.testing.assert_close(second.weight.grad, delta.t() @ expected_trace, rtol=1e-6, atol=1e-6)
        any_spike |= bool(spikes.any())
    assert any_spike


def test_trace_gradient_differs_from_instantaneous_gradient():
    layer = nn.Linear(3, 2)
    spikes = torch.tensor([[1.0, 0.0, 1.0]])
    trace = torch.tensor([[1.5, 0.5, 1.0]])
    synapse_forward(layer, spikes, trace).sum().backward()
    torch.testing.assert_close(layer.weight.grad, torch.ones(2, 1) @ trace)
    torch.testing.assert_close(layer.bias.grad, torch.ones(2))


def test_conv_trace_gradient_matches_autograd_on_trace_input():
    torch.manual_seed(0)
    conv = BinaryConv2d(2, 3, 3, padding=1, generator=torch.Generator().manual_seed(0))
    spikes = (torch.rand(2, 2, 5, 5) > 0.5).float().requires_grad_()
    trace = torch.rand(2, 2, 5, 5)
    grad_out = torch.randn(2, 3, 5, 5)
    synapse_forward(conv, spikes, trace).backward(grad_out)
    got_weight, got_input = conv.weight.grad.clone(), spikes.grad.clone()
    # Reference: autograd of conv(trace) gives delta (x) trace; autograd of conv(spikes) gives W^T delta.
    conv.weight.grad = None
    reference_trace = trace.clone()
    torch.nn.functional.conv2d(reference_trace, conv.weight, padding=1).backward(grad_out)
    spikes_ref = spikes.detach().clone().requires_grad_()
    torch.nn.functional.conv2d(spikes_ref, conv.weight.detach(), padding=1).backward(grad_out)
    torch.testing.assert_close(got_weight, conv.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_input, spikes_ref.grad, rtol=1e-5, atol=1e-5)


def test_vgg_steps_and_backpropagates():
    model = build_vgg((3, 8, 8), 4, channels=(4, "A", 8, "A"))
    out = model.step(torch.rand(2, 3, 8, 8))
    assert out.shape == (2, 4)
    out.sum().backward()
    binary, _ = split_parameters(model)
    assert all(p.grad is not None for p in binary)


def test_per_step_batchnorm_keeps_one_set_per_step_and_pools_them():
    torch.manual_seed(0)
    norm = StepBatchNorm1d(3, time_steps=2)
    norm.momentum = 1.0  # running statistics = the last batch's, to compare exactly
    batches = [torch.randn(16, 3) * (t + 1) + 5 * t for t in range(3)]
    outputs = [norm(x) for x in batches]  # step 3 falls back to the last set
    expected_var = [x.var(0, unbiased=True) for x in batches]
    torch.testing.assert_close(norm.step_mean[0], batches[0].mean(0))
    torch.testing.assert_close(norm.step_mean[1], batches[2].mean(0))
    torch.testing.assert_close(norm.step_var[1], expected_var[2])
    pooled = (norm.step_mean[0] + norm.step_mean[1]) / 2
    torch.testing.assert_close(norm.running_mean, pooled)
    torch.testing.assert_close(norm.running_var, (norm.step_var[0] + norm.step_var[1]) / 2
                               + ((norm.step_mean - pooled) ** 2).mean(0))
    torch.testing.assert_close(outputs[1], nn.functional.batch_norm(batches[1], None, None, training=True))
    norm.eval()
    norm.reset_state()
    torch.testing.assert_close(norm(batches[0]), (batches[0] - norm.step_mean[0]) / torch.sqrt(norm.step_var[0]
                                                                                               + norm.eps))
    with pytest.raises(ValueError, match="per-step BatchNorm needs time_steps >= 1"):
        StepBatchNorm2d(3, time_steps=0)


def test_network_reset_restarts_the_per_step_count():
    model = build_mlp((6, 5, 4, 2), batchnorm="per-step", time_steps=3)
    norm = model.layers[3]
    model(torch.rand(3, 4, 6))
    assert norm.time_step == 3
    model.reset_state()
    assert norm.time_step == 0


def test_running_batchnorm_forwards_the_running_statistics_with_batch_gradients():
    torch.manual_seed(1)
    norm, reference = RunningBatchNorm2d(2), nn.BatchNorm2d(2)
    with torch.no_grad():
        for layer in (norm, reference):
            layer.running_mean.copy_(torch.tensor([0.5, -1.0]))
            layer.running_var.copy_(torch.tensor([2.0, 0.5]))
    x = torch.randn(4, 2, 3, 3, requires_grad=True)
    deployed = reference.eval()(x).detach()
    y = norm(x)
    torch.testing.assert_close(y, deployed)  # the forward value is the eval-mode one (statistics before update)
    (y * torch.arange(72.0).reshape(4, 2, 3, 3)).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    reference.train()
    (reference(x) * torch.arange(72.0).reshape(4, 2, 3, 3)).sum().backward()
    torch.testing.assert_close(grad, x.grad)  # the gradient is batch-statistics BatchNorm's
    torch.testing.assert_close(norm.running_mean, reference.running_mean)  # both updated once
