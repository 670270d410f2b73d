"""Recurrent layers (docs/fixed-point.md §4.9) in the simulator (step loop and ``simulate``) and the torch
reference: hand-derived single-neuron traces, then random dense chains with one or more recurrent layers
(binary and 8-bit recurrent weights, both shift roundings) where all agree exactly and the recurrent input
demonstrably matters.
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import recurrent_synapse_params, simulate, simulate_stepwise, synapse_step_int
from bso_deploy.hardware.spec import SPEC
from test_simulator import run_all

ONE = 1 << SPEC.state_shift


def recurrent_neuron(recurrent: int, weight_exp: int = 0, rounding: str = "floor", **kwargs) -> FixedPointNetwork:
    kwargs = {"du": SPEC.decay_max, "dv": SPEC.decay_max, "vth": 0, **kwargs}
    layer = FixedPointLayer(name="r", kind="dense", input_shape=(1,), weight=np.array([[1]]),
                            recurrent_weight=np.array([[recurrent]]), recurrent_weight_exp=weight_exp,
                            shift_rounding=rounding, **kwargs)
    return FixedPointNetwork("bso", (1,), (layer,))




def trace(fx_net: FixedPointNetwork, inputs: list[int]) -> tuple[list[int], list[int]]:
    result = run_all(fx_net, np.array(inputs).reshape(-1, 1, 1))
    return result.u[0][:, 0, 0].tolist(), result.spikes[0][:, 0, 0].tolist()


def test_own_spike_returns_one_step_later() -> None:
    # the input of step 0 arrives at step 1 (§4.8) and fires (vth = 0); that spike arrives at step 2 as 3, fires
    # again, and so on: a(t) = a_ff(t) + shift(w_rec s(t - 1))
    u, s = trace(recurrent_neuron(3), [1, 0, 0, 0, 0])
    assert (u, s) == ([0, ONE, 3 * ONE, 3 * ONE, 3 * ONE], [0, 1, 1, 1, 1])
    # an inhibitory loop: the spike of step 1 comes back as -1 at step 2 and silences the neuron
    u, s = trace(recurrent_neuron(-1), [1, 0, 0, 0, 0])
    assert (u, s) == ([0, ONE, -ONE, 0, 0], [0, 1, 0, 0, 0])
    # both at once: a(2) = 1 (input of step 1) + 3 (spike of step 1)
    u, _ = trace(recurrent_neuron(3), [1, 1, 0])
    assert u == [0, ONE, 4 * ONE]


@pytest.mark.parametrize(("recurrent", "exp", "rounding", "a"), [
    (3, -1, "floor", 1), (3, -1, "nearest", 2), (-3, -1, "floor", -2), (-3, -1, "nearest", -1),
    (-5, -2, "nearest", -1), (7, 2, "floor", 28)])
def test_recurrent_sum_is_shifted_on_its_own(recurrent: int, exp: int, rounding: str, a: int) -> None:
    # feed-forward 1 (exponent 0) plus the recurrent sum shifted separately by its own exponent (§4.9)
    u, _ = trace(recurrent_neuron(recurrent, exp, rounding), [1, 0, 0])
    assert u == [0, ONE, a * ONE]


def test_binary_recurrent_weight_scales_by_its_magnitude() -> None:
    layer = FixedPointLayer(name="b", kind="dense", input_shape=(2,), weight=np.eye(2, dtype=np.int64),
                            recurrent_weight=np.array([[1, -1], [-1, -1]]), recurrent_binary=True,
                            recurrent_weight_mant=5, recurrent_weight_exp=-1, shift_rounding="nearest",
                            du=SPEC.decay_max, dv=SPEC.decay_max, vth=0)
    synapse = recurrent_synapse_params(layer)
    a = synapse_step_int(np.array([[1, 0], [0, 1], [1, 1]], dtype=np.int8), synapse)
    assert a.tolist() == [[3, -2], [-2, -2], [0, -5]]  # (5 S) shifted right by 1 to nearest: 5/2 -> 3, -5/2 -> -2
    result = run_all(FixedPointNetwork("bso", (2,), (layer,)), np.array([[[1, 1]], [[0, 0]], [[0, 0]]]))
    assert result.u[0][2, 0].tolist() == [0, -5 * ONE]


def test_saturation_counts_the_summed_input() -> None:
    # feed-forward 200 * 255 >> 1 = 25500 and recurrent 255 << 3 = 2040... together 27540: inside; with the
    # recurrent exponent 4 the sum 29580 is still inside, with 6 it is 25500 + 16320 = 41820 > 2**15 - 1
    def net(recurrent_exp: int) -> FixedPointNetwork:
        layer = FixedPointLayer(name="s", kind="dense", input_shape=(1,), weight=np.array([[200]]), weight_exp=-1,
                                recurrent_weight=np.array([[255]]), recurrent_weight_exp=recurrent_exp,
                                du=SPEC.decay_max, dv=SPEC.decay_max, vth=0)
        return FixedPointNetwork("bso", (1,), (layer,))

    inputs = np.full((4, 1, 1), SPEC.input_max)
    assert run_all(net(4), inputs).saturation[0].a.tolist() == [[0]]
    assert run_all(net(6), inputs).saturation[0].a.tolist() == [[2]]  # steps 2, 3: both sums arrive


def random_recurrent_network(seed: int, profile: str = "bso") -> FixedPointNetwork:
    """A dense chain of 2 - 3 layers, layer 0 on graded input; recurrent layers with binary or 8-bit
    recurrent weights of either sign mode; thresholds near the typical input so that layers fire."""
    rng = np.random.default_rng(seed)
    bso = profile == "bso"
    count = int(rng.integers(2, 4))
    sizes = [int(rng.integers(3, 9)) for _ in range(count + 1)]
    recurrent = rng.random(count) < 0.6
    recurrent[int(rng.integers(0, count))] = True
    layers = []
    for k in range(count):
        n_in, n = sizes[k], sizes[k + 1]
        last = k == count - 1
        spiking = not last or recurrent[k] or rng.random() < 0.5
        binary = bool(rng.random() < 0.5)
        weight = rng.choice([-1, 1], (n, n_in)) if binary else rng.integers(-256, 256, (n, n_in))
        weight_mant = int(rng.integers(1, 128)) if binary else 1
        weight_exp = int(rng.integers(-7, -3)) if k == 0 else int(rng.integers(-2, 2))
        typical = max(1, int(np.abs(weight).mean() * weight_mant * np.sqrt(n_in) * (60 if k == 0 else 0.5)
                             * 2.0 ** weight_exp))  # a signed sum grows like the root of the fan-in
        fields = {}
        if recurrent[k] and spiking:
            recurrent_binary = bool(rng.random() < 0.5)
            mode = rng.integers(0, 3)
            values = rng.integers(-256, 256, (n, n))
            values = {0: values, 1: np.abs(values) % 256, 2: -np.abs(values)}[int(mode)]
            fields = dict(recurrent_weight=rng.choice([-1, 1], (n, n)) if recurrent_binary else values,
                          recurrent_binary=recurrent_binary,
                          recurrent_weight_mant=int(rng.integers(1, 128)) if recurrent_binary else 1,
                          recurrent_weight_exp=int(rng.integers(-4, 1)))
        layers.append(FixedPointLayer(
            name=f"layer{k}", kind="dense", input_shape=(n_in,), weight=weight, binary=binary,
            weight_mant=weight_mant, weight_exp=weight_exp, du=int(rng.choice([0, 2048, 4095])),
            dv=int(rng.choice([0, 1024, 4095])),
            vth=(rng.integers(0, typical + 2, n) if bso else int(rng.integers(0, typical + 2))) if spiking
            else 0,
            bias_mant=rng.integers(-50, 50, n) if bso else 0, bias_exp=rng.integers(-2, 3, n) if bso else 0,
            bias_delay=k + 1 if bso else 0, reset=str(rng.choice(["zero", "subtract"])) if bso else "zero",
            spiking=spiking, shift_rounding=str(rng.choice(["floor", "nearest"])) if bso else "floor", **fields))
    return FixedPointNetwork(profile, (sizes[0],), tuple(layers))


def without_recurrence(fx_net: FixedPointNetwork) -> FixedPointNetwork:
    plain = {"recurrent_weight": None, "recurrent_binary": False, "recurrent_weight_mant": 1,
             "recurrent_weight_exp": 0}
    layers = tuple(FixedPointLayer.from_dict({**layer.to_dict(), **plain}) for layer in fx_net.layers)
    return FixedPointNetwork(fx_net.profile, fx_net.input_shape, layers)


def random_inputs(seed: int, fx_net: FixedPointNetwork, steps: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng(500 + seed)
    shape = (steps, batch, *fx_net.input_shape)
    return append_zero_steps(rng.integers(0, SPEC.input_max + 1, shape) * (rng.random(shape) < 0.6), fx_net.latency)


@pytest.mark.parametrize("profile", ["bso", "loihi"])
@pytest.mark.parametrize("seed", range(10))
def test_random_recurrent_networks_agree_and_the_loop_matters(seed: int, profile: str) -> None:
    fx_net = random_recurrent_network(seed, profile)
    inputs = random_inputs(seed, fx_net, steps=12, batch=4)
    result = run_all(fx_net, inputs)
    assert all(spikes.any() for spikes, layer in zip(result.spikes, fx_net.layers) if layer.spiking)
    plain = simulate(without_recurrence(fx_net), inputs, record=True)
    assert any(not np.array_equal(a, b) for a, b in zip(result.v, plain.v)), "the recurrent input changed nothing"


def test_stepwise_is_the_reference_for_recurrent_networks() -> None:
    """simulate runs the step loop for a network with a recurrent layer: the same arrays, bit for bit."""
    fx_net = random_recurrent_network(3)
    inputs = random_inputs(3, fx_net, steps=6, batch=2)
    ours, reference = simulate(fx_net, inputs, record=True), simulate_stepwise(fx_net, inputs, record=True)
    for a, b in zip(ours.v + ours.u + ours.spikes, reference.v + reference.u + reference.spikes):
        np.testing.assert_array_equal(a, b)


def test_learners_and_hardware_aware_forward_refuse_recurrent_layers() -> None:
    """What does not run recurrent synapses says so instead of running another network."""
    import torch
    from bso_deploy.hardware.learning import LearningRule, SimLearner
    from bso_deploy.hardware.torch_learning import TorchLearner

    from bso_deploy.hardware_aware import integer_layer

    fx_net = recurrent_neuron(3)
    rule = LearningRule(variant="bso", time_steps=2)
    for learner in (SimLearner, TorchLearner):
        with pytest.raises(ValueError, match="layer 'r' is recurrent"):
            learner(fx_net, rule)
    with pytest.raises(ValueError, match="no recurrent layers"):
        integer_layer(fx_net.layers[0], np.ones(1), torch.device("cpu"))
