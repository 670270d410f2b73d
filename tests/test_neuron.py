"""LIF step function: hand-computed traces, reset modes, strict threshold, surrogate gradient."""

import pytest
import torch

from bso_deploy.neuron import LIF, LIFParameters, initial_state, lif_step, spike_function


def run_steps(currents, params):
    state = initial_state(torch.zeros(1))
    spikes, vs, traces = [], [], []
    for current in currents:
        s, state = lif_step(torch.tensor([current]), state, params)
        spikes.append(s.item())
        vs.append(state.v.item())
        traces.append(state.trace.item())
    return spikes, vs, traces


def test_subtract_reset_hand_trace():
    # lambda = 0.5, theta = 1: v = 0.5 v + I; spike if v > 1; v -= 1 on spike
    spikes, vs, traces = run_steps([0.75, 0.75, 0.75, 2.0, 0.0], LIFParameters())
    assert spikes == [0.0, 1.0, 0.0, 1.0, 0.0]
    # v: 0.75; 1.125 -> 0.125; 0.8125; 2.40625 -> 1.40625; 0.703125 (no spike: 0.703 < 1)
    assert vs == [0.75, 0.125, 0.8125, 1.40625, 0.703125]
    # trace: 0, 1, 0.5, 1.25, 0.625
    assert traces == [0.0, 1.0, 0.5, 1.25, 0.625]


def test_zero_reset_and_strict_threshold():
    params = LIFParameters(reset="zero")
    spikes, vs, _ = run_steps([1.0, 1.5, 2.0], params)
    # v=1.0 is not > 1 (strict); then 0.5+1.5=2.0 spikes and resets to 0; then 2.0 spikes again
    assert spikes == [0.0, 1.0, 1.0]
    assert vs == [1.0, 0.0, 0.0]


def test_tau_changes_decay():
    params = LIFParameters(tau=4.0, threshold=10.0)
    _, vs, _ = run_steps([1.0, 0.0], params)
    assert vs == [1.0, 0.75]


def test_surrogate_gradient_is_sigmoid_derivative():
    x = torch.tensor([-0.5, 0.0, 0.25], requires_grad=True)
    spike_function(x, 4.0).sum().backward()
    sig = torch.sigmoid(4.0 * x.detach())
    torch.testing.assert_close(x.grad, 4.0 * sig * (1 - sig), rtol=0, atol=0)


def test_state_is_detached_between_steps():
    layer = LIF()
    current = torch.ones(2, 3, requires_grad=True)
    layer(current)
    assert not layer.state.v.requires_grad and not layer.state.trace.requires_grad


def test_inputs_are_not_mutated():
    state = initial_state(torch.zeros(4))
    before = state.v.clone()
    lif_step(torch.full((4,), 3.0), state, LIFParameters())
    assert torch.equal(state.v, before)


@pytest.mark.parametrize("kwargs", [dict(tau=1.0), dict(threshold=0.0), dict(reset="hard"), dict(alpha=-1)])
def test_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        LIFParameters(**kwargs)
