"""The torch on-chip learning rule (hardware/torch_learning.py) equals the NumPy rule (hardware/learning.py)
exactly: traces, momenta, weights, second moments, errors, surrogates, spikes and v after every step, on random
streams (hypothesis) with saturation, ties, stochastic rounding, t_epoch > 1 and both variants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from bso_deploy.hardware.learner import population_network
from bso_deploy.hardware.learning import LearningRule, LearningState, SimLearner, learning_step_int
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.torch_learning import TorchLearner, torch_isqrt, torch_learning_step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def rules(draw, time_steps: int | None = None) -> LearningRule:
    """Small widths so that traces, momenta, errors and second moments saturate; small shifts so that ties
    at the surrogate buckets and at the flip threshold happen."""
    variant = draw(st.sampled_from(["bso", "tbso"]))
    rounding = draw(st.sampled_from(["nearest", "stochastic"]))
    momentum_bits = draw(st.integers(4, 16))
    error_bits = draw(st.integers(3, 10))
    return LearningRule(
        variant=variant, rounding=rounding, seed=draw(st.integers(0, 2 ** 32 - 1)),
        time_steps=time_steps or draw(st.integers(1, 4)),
        trace_decay=draw(st.sampled_from([0, 1024, 2048, 3000, 4095])), trace_bits=draw(st.integers(3, 9)),
        trace_increment=draw(st.integers(1, 7)), surrogate_shift=draw(st.integers(0, 10)),
        surrogate_table=tuple(draw(st.lists(st.integers(0, 15), min_size=1, max_size=5))),
        error_bits=error_bits, error_shift=draw(st.integers(0, 12)),
        error_target=draw(st.integers(0, ((1 << (error_bits - 1)) - 1) // 2)), momentum_bits=momentum_bits,
        momentum_shift=draw(st.integers(0, 8)), product_shift=draw(st.integers(0, 6)),
        flip_threshold=draw(st.integers(0, (1 << (momentum_bits - 1)) - 1)), threshold_shift=draw(st.integers(0, 8)),
        second_moment_bits=draw(st.integers(4, 40)), second_moment_shift=draw(st.integers(0, 10)),
        second_moment_product_shift=draw(st.integers(0, 12)), t_epoch=draw(st.integers(1, 3)),
        **draw(biases()))


@st.composite
def biases(draw) -> dict[str, int]:
    """The learned bias (docs/onchip-learning.md §15): off, narrow (saturates) or wide (the 13-bit bias_mant
    register saturates)."""
    bits = draw(st.sampled_from([0, 2, 3, 6, 16]))
    return {"bias_bits": bits, "bias_shift": draw(st.integers(0, max(0, bits - 1)))}


def network(rng: np.random.Generator) -> FixedPointNetwork:
    """input 5 -> binary spiking 7 (per-neuron vth, subtract reset, bias) -> binary readout 3 (bias)."""
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(5,), weight=rng.choice([-1, 1], (7, 5)),
                             binary=True, weight_mant=int(rng.integers(1, 4)), du=int(rng.choice([4095, 2047])),
                             dv=int(rng.choice([0, 2048])), vth=rng.integers(0, 200, 7),
                             bias_mant=rng.integers(-30, 30, 7),
                             bias_delay=int(rng.integers(0, 2)), reset=str(rng.choice(["zero", "subtract"])))
    readout = FixedPointLayer(name="readout", kind="dense", input_shape=(7,), weight=rng.choice([-1, 1], (3, 7)),
                              binary=True, weight_mant=int(rng.integers(1, 9)), weight_exp=int(rng.integers(-1, 3)),
                              du=4095, dv=0, bias_mant=rng.integers(-60, 60, 3), bias_delay=2, spiking=False,
                              shift_rounding=str(rng.choice(["floor", "nearest"])))  # §4.7
    return FixedPointNetwork(profile="bso", input_shape=(5,), layers=(hidden, readout))


def assert_records_equal(a, b) -> None:
    assert set(a.steps) == set(b.steps)
    for name in a.steps:
        np.testing.assert_array_equal(a.steps[name], b.steps[name], err_msg=name)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.flips, b.flips)
    np.testing.assert_array_equal(a.flip_events, b.flip_events)
    for name in ("weight", "momentum", "trace", "second_moment", "bias"):
        np.testing.assert_array_equal(getattr(a.state, name), getattr(b.state, name), err_msg=name)
    assert a.state.counter == b.state.counter


@FAST
@given(rule=rules(), seed=st.integers(0, 2 ** 32 - 1), layer=st.sampled_from([0, 1]),
       population=st.sampled_from([1, 2, 3]))
def test_learners_agree_after_every_step(rule: LearningRule, seed: int, layer: int, population: int):
    """Both learning layers; the readout as a population of 1 to 3 neurons per class (§14)."""
    rng = np.random.default_rng(seed)
    fx_net = network(rng)
    samples = 4
    inputs = rng.integers(0, 256, (rule.time_steps, samples, 5))
    if layer == 1:
        rule = replace(rule, population=population)
        fx_net = population_network(fx_net, population)
        targets = {"labels": rng.integers(0, 3, samples)}
    else:
        targets = {"errors": rng.integers(-300, 300, (rule.time_steps, samples, 7))}
    numpy_run = SimLearner(fx_net, rule, layer=layer).run(inputs, record=True, **targets)
    torch_learner = TorchLearner(fx_net, rule, layer=layer, device=DEVICE)
    torch_run = torch_learner.run(inputs, record=True, **targets)
    assert_records_equal(numpy_run, torch_run)
    again = torch_learner.run(inputs, **targets)  # state carried over into a second run
    assert again.state.counter == 2 * samples * rule.time_steps


@pytest.mark.parametrize("variant", ["bso", "tbso"])
def test_streams_reach_saturation_and_flips(variant: str):
    """A fixed stream whose narrow registers saturate: the parity above covers these edges."""
    rng = np.random.default_rng(5)
    fx_net = network(rng)
    rule = LearningRule(variant=variant, time_steps=3, trace_bits=4, trace_increment=6, trace_decay=1024,
                        momentum_bits=6, momentum_shift=3, product_shift=1, flip_threshold=20, threshold_shift=4,
                        second_moment_bits=12, second_moment_shift=2, second_moment_product_shift=0,
                        error_bits=6, error_shift=2, error_target=15, rounding="stochastic", seed=11, t_epoch=2)
    inputs, labels = rng.integers(0, 256, (3, 30, 5)), rng.integers(0, 3, 30)
    numpy_run = SimLearner(fx_net, rule, layer=0).run(inputs, errors=rng.integers(-40, 40, (3, 30, 7)), record=True)
    assert (numpy_run.steps["trace"] == rule.trace_max).any()
    assert (np.abs(numpy_run.steps["momentum"]) == rule.momentum_max).any()
    assert numpy_run.flips.sum() > 0 and (numpy_run.steps["surrogate"] > 0).any()
    rule = replace(rule, flip_threshold=4)  # T-BSO: (4 isqrt(4095)) >> 4 = 15, below the momentum's 31
    readout_run = SimLearner(fx_net, rule).run(inputs, labels=labels, record=True)
    torch_run = TorchLearner(fx_net, rule, device=DEVICE).run(inputs, labels=labels, record=True)
    assert_records_equal(readout_run, torch_run)
    assert readout_run.flips.sum() > 0
    if variant == "tbso":
        assert (readout_run.steps["second_moment"] == rule.second_moment_max).any()


def random_state(rng: np.random.Generator, rule: LearningRule, n_out: int, n_in: int) -> LearningState:
    """Any reachable state, saturated entries included."""
    return LearningState(
        weight=rng.choice([-1, 1], (n_out, n_in)).astype(np.int8),
        momentum=rng.integers(-rule.momentum_max, rule.momentum_max + 1, (n_out, n_in)),
        trace=rng.integers(0, rule.trace_max + 1, n_in),
        second_moment=rng.integers(0, rule.second_moment_max + 1, rule.time_steps),
        counter=int(rng.integers(0, 1000)), bias=rng.integers(-rule.bias_max, rule.bias_max + 1, n_out))


@FAST
@given(rule=rules(), seed=st.integers(0, 2 ** 32 - 1), spiking=st.booleans())
def test_step_functions_agree_on_random_states(rule: LearningRule, seed: int, spiking: bool):
    rng = np.random.default_rng(seed)
    n_out, n_in = 4, 6
    state = random_state(rng, rule, n_out, n_in)
    for _ in range(3):
        pre = rng.integers(0, 2, n_in)
        vth = rng.integers(0, 50, n_out) if spiking else None
        v = (rng.integers(0, 50, n_out) << 6) + rng.integers(-300, 300, n_out)  # near the thresholds: ties
        error = rng.integers(-2 * rule.error_max, 2 * rule.error_max + 1, n_out)  # saturates
        t = int(rng.integers(0, rule.time_steps))
        expected, expected_flips = learning_step_int(state, pre, v, vth, error, t, rule)

        def tensor(value):
            return torch.as_tensor(np.asarray(value), device=DEVICE)

        torch_state = LearningState(weight=tensor(state.weight), momentum=tensor(state.momentum),
                                    trace=tensor(state.trace), second_moment=tensor(state.second_moment),
                                    counter=state.counter, bias=tensor(state.bias))
        got, flips = torch_learning_step(torch_state, tensor(pre), tensor(v), None if vth is None else tensor(vth),
                                         tensor(error), t, rule)
        np.testing.assert_array_equal(flips.cpu().numpy(), expected_flips)
        for name in ("weight", "momentum", "trace", "second_moment", "bias"):
            np.testing.assert_array_equal(getattr(got, name).cpu().numpy(), getattr(expected, name), err_msg=name)
        assert got.counter == expected.counter
        state = expected


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 15, 16, 17, 2 ** 40 - 1, 2 ** 40, 2 ** 47 + 12345])
def test_isqrt(n: int):
    import math

    assert int(torch_isqrt(torch.tensor(n, dtype=torch.int64))) == math.isqrt(n)


def test_torch_learner_uses_the_requested_device():
    rng = np.random.default_rng(0)
    learner = TorchLearner(network(rng), LearningRule(time_steps=2), device="cpu")
    assert learner.device.type == "cpu"
    assert isinstance(learner.state.momentum, np.ndarray)


def test_registry_builds_the_torch_learner():
    from bso_deploy.hardware.learners import get_learner

    assert get_learner("torch") is TorchLearner


EDGE_CASES = {
    # staggered thresholds: members of one class disagree; flips
    "members": dict(variant="tbso", error_bits=8, error_shift=0, error_target=60, bias_bits=10, bias_shift=0),
    # the stream starts from saturated biases: the register and the 13-bit bias_mant it feeds both saturate
    "saturated-bias": dict(variant="bso", error_bits=7, error_shift=2, error_target=20, bias_bits=16, bias_shift=0),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_population_and_bias_streams_reach_their_edges(case: str):
    """A population readout of 3 per class with learned biases (docs/onchip-learning.md §14, §15): the torch
    learner equals the NumPy one after every step, and the streams reach what the comparison is about."""
    rng = np.random.default_rng(7)
    fx_net = population_network(network(rng), 3)
    rule = LearningRule(time_steps=3, trace_bits=5, trace_increment=12, trace_decay=1024, momentum_bits=6,
                        momentum_shift=2, product_shift=2, flip_threshold=6, threshold_shift=2, second_moment_shift=2,
                        second_moment_product_shift=2, population=3, **EDGE_CASES[case])
    state = SimLearner(fx_net, rule).state
    if case == "saturated-bias":
        state = state._replace(bias=np.array([1, -1, 1, -1, 1, -1, 1, -1, 1]) * rule.bias_max)
    inputs, labels = rng.integers(0, 256, (3, 40, 5)), rng.integers(0, 3, 40)
    numpy_run = SimLearner(fx_net, rule, state=state).run(inputs, labels=labels, record=True)
    torch_learner = TorchLearner(fx_net, rule, state=state, device=DEVICE)
    assert_records_equal(numpy_run, torch_learner.run(inputs, labels=labels, record=True))
    np.testing.assert_array_equal(torch_learner.network().layers[-1].bias_mant,
                                  SimLearner(fx_net, rule, state=numpy_run.state).network().layers[-1].bias_mant)
    assert numpy_run.flips.sum() > 0
    if case == "members":
        weight = numpy_run.steps["weight"].reshape(40, -1, 3, 3, 7)
        assert (weight.min(axis=3) != weight.max(axis=3)).any()
    else:
        bias = numpy_run.steps["bias"]
        assert (np.abs(bias) == rule.bias_max).any()
        assert (np.abs(np.asarray(fx_net.layers[-1].bias_mant) + bias) > 4095).any()  # bias_mant clips at 13 bits
