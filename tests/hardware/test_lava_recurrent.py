"""Recurrent layers (docs/fixed-point.md §4.9) on Lava: our processes (profile bso: a synapse process from the
neuron's s_out back to its a_in) and Lava's built-in Dense + LIF loop (profile loihi) equal the simulator
exactly, spikes, u, v and output at every step; the hand-derived trace checks the loop's one-step timing
against Lava's runtime itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointNetwork
from bso_deploy.hardware.simulator import simulate
from test_lava_deploy import assert_same_as_simulate
from test_recurrent import ONE, random_inputs, random_recurrent_network, recurrent_neuron, without_recurrence


@pytest.fixture(scope="module")
def lava_deploy():
    from conftest import require, require_lava

    require_lava()
    return require("bso_deploy.hardware.lava.deploy")


@pytest.mark.parametrize("profile", ["bso", "loihi"])
def test_own_spike_returns_one_step_later_in_lava(lava_deploy, profile: str) -> None:
    """The trace of tests/hardware/test_recurrent.py run by Lava: the spike of step 1 arrives at step 2."""
    fx_net = recurrent_neuron(3)
    fx_net = FixedPointNetwork(profile, fx_net.input_shape, fx_net.layers)
    inputs = np.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]]).T.reshape(5, 2, 1)
    with lava_deploy.deploy(fx_net) as network:
        result = network.run(inputs, record=True)
    assert result.u[0][:, 0, 0].tolist() == [0, ONE, 3 * ONE, 3 * ONE, 3 * ONE]
    assert result.spikes[0][:, 1, 0].tolist() == [0, 0, 0, 1, 1]  # the second sample restarts from zero
    assert_same_as_simulate(fx_net, inputs, result)


@pytest.mark.parametrize(("profile", "seed", "copies"), [("bso", 0, 1), ("bso", 1, 3), ("bso", 2, 1),
                                                          ("loihi", 3, 1), ("loihi", 4, 1)])
def test_random_recurrent_networks_match_the_simulator(lava_deploy, profile: str, seed: int, copies: int) -> None:
    fx_net = random_recurrent_network(seed, profile)
    inputs = random_inputs(seed, fx_net, steps=8, batch=4)
    with lava_deploy.deploy(fx_net, copies=copies) as network:
        result = network.run(inputs, record=True)
    assert_same_as_simulate(fx_net, inputs, result)
    assert all(spikes.any() for spikes, layer in zip(result.spikes, fx_net.layers) if layer.spiking)
    plain = simulate(without_recurrence(fx_net), inputs, record=True)
    assert any(not np.array_equal(a, b) for a, b in zip(result.v, plain.v))
