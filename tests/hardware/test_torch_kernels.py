"""The torch reference's pure step functions (hardware/torch_kernels.py) equal the NumPy step functions
(hardware/step_functions.py) exactly, part by part, on random cases and on the edges of docs/fixed-point.md:
floor shifts of negative values, ties of the rounding to nearest (§4.7), the sign modes of §4.5, the wrap
interval of §3.2 and the saturation of §3.3. Both implementations are written independently; only the spec's
constants are shared. Every function is pure: its inputs are unchanged afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bso_deploy.hardware.network import FixedPointLayer
from bso_deploy.hardware.spec import SPEC
from bso_deploy.hardware.step_functions import (
    NeuronState,
    bias_int,
    dense_weight_int,
    lif_step_events_int,
    neuron_params,
    recurrent_synapse_params,
    shift_int,
    synapse_params,
    synapse_step_int,
    trunc_decay_int,
    wrap_u_int,
)
from bso_deploy.hardware.torch_kernels import (
    LIFState,
    effective_weights,
    exact_dtype,
    exponent_shift,
    initial_state,
    lif_step,
    neuron_constants,
    pow2_shift,
    recurrent_synapse_constants,
    synapse_constants,
    synaptic_current,
    trunc_decay,
    wrap_u,
)
from fixed_point_strategies import networks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CPU = torch.device("cpu")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tensor(values: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(values), dtype=torch.int64)


def assert_equal(ours: torch.Tensor, theirs: np.ndarray) -> None:
    """Exact equality with the NumPy result, values and shape."""
    np.testing.assert_array_equal(ours.cpu().numpy(), np.asarray(theirs))


def unchanged(*tensors: torch.Tensor):
    """Copies of ``tensors``, to check afterwards that a function did not mutate them."""
    return [t.clone() for t in tensors]


def assert_unchanged(before: list[torch.Tensor], *after: torch.Tensor) -> None:
    for old, new in zip(before, after, strict=True):
        assert torch.equal(old, new), "an input was mutated"


def edge_values(rng: np.random.Generator, size: int, bound: int) -> np.ndarray:
    """Random values in [-bound, bound] with the ends, 0, +-1 and a few powers of two mixed in."""
    edges = np.array([-bound, bound, 0, 1, -1, 2, -2, 3, -3, 4096, -4096, 4095, -4095])
    values = rng.integers(-bound, bound + 1, size=size)
    values[:: 3] = rng.choice(edges, size=values[:: 3].shape)
    return values


@pytest.mark.parametrize("exponent", range(SPEC.weight_exp_min, SPEC.weight_exp_max + 1))
def test_pow2_shift_floors_as_the_arithmetic_shift(exponent: int) -> None:
    """§1.2: x * 2**e, or floor(x / 2**-e) (-3 >> 1 = -2, -1 >> 4 = -1), one exponent or one per element."""
    rng = np.random.default_rng(exponent + 20)
    x = edge_values(rng, 500, 2**30)
    before = unchanged(tensor(x))
    assert_equal(pow2_shift(tensor(x), exponent), shift_int(x, exponent))
    exponents = rng.integers(SPEC.bias_exp_min, SPEC.bias_exp_max + 1, size=x.shape)
    assert_equal(pow2_shift(tensor(x), tensor(exponents)), shift_int(x, exponents))
    assert_unchanged(before, tensor(x))
    assert pow2_shift(tensor([-3]), -1).item() == -2 and pow2_shift(tensor([-1]), -4).item() == -1


@pytest.mark.parametrize("rounding", ["floor", "nearest"])
@pytest.mark.parametrize("exponent", range(SPEC.weight_exp_min, SPEC.weight_exp_max + 1))
def test_exponent_shift_rounds_and_breaks_ties_as_the_simulator(rounding: str, exponent: int) -> None:
    """§4.7 on random sums and on every tie: odd multiples of 2**(k-1), positive and negative, round up."""
    rng = np.random.default_rng(exponent + 40)
    k = -exponent
    ties = (2 * rng.integers(-5000, 5000, size=200) + 1) * (1 << (k - 1)) if k > 0 else np.zeros(0, np.int64)
    acc = np.concatenate([edge_values(rng, 500, 2**30), ties])
    ours = exponent_shift(tensor(acc), exponent, nearest=rounding == "nearest")
    assert_equal(ours, shift_int(acc, exponent, rounding))
    if k > 0 and rounding == "nearest":  # halves go up: -3 / 2 -> -1, +3 / 2 -> 2 (§4.7's examples)
        np.testing.assert_array_equal(ours.numpy()[-ties.size:], (ties + (1 << (k - 1))) >> k)


def test_exponent_shift_examples_of_the_spec() -> None:
    """The worked examples of docs/fixed-point.md §4.7."""
    assert exponent_shift(tensor([-3]), -1, nearest=False).item() == -2
    assert exponent_shift(tensor([-3, 3]), -1, nearest=True).tolist() == [-1, 2]
    assert exponent_shift(tensor([-5]), -2, nearest=True).item() == -1
    assert exponent_shift(tensor([0]), -3, nearest=True).item() == 0


@pytest.mark.parametrize("mode", ["mixed", "excitatory", "inhibitory", "edges", "empty"])
def test_effective_weights_are_lavas_dense_rule(mode: str) -> None:
    """§4.5: the sign mode of the whole matrix, its clip and the mixed mode's floor to even."""
    rng = np.random.default_rng(len(mode))
    for _ in range(50):
        weight = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=(int(rng.integers(1, 9)), 7))
        weight = {"mixed": weight, "excitatory": np.abs(weight) % (SPEC.weight_max + 1),
                  "inhibitory": -np.abs(weight),
                  "edges": rng.choice([SPEC.weight_min, -255, -2, -1, 0, 1, 2, 254, SPEC.weight_max],
                                      size=weight.shape),
                  "empty": np.zeros((0, 7), np.int64)}[mode]
        before = unchanged(tensor(weight))
        assert_equal(effective_weights(tensor(weight)), dense_weight_int(weight))
        assert_unchanged(before, tensor(weight))
    mixed = tensor([[1, -1, 2, -2, 255, -255, -256]])
    assert effective_weights(mixed).tolist() == [[0, -2, 2, -2, 254, -256, -256]]
    assert effective_weights(tensor([[-256, -3]])).tolist() == [[-255, -3]]  # inhibitory: clip only


@pytest.mark.parametrize("factor", [0, 1, 2, 2048, SPEC.decay_max, SPEC.decay_unity, 3001])
def test_trunc_decay_rounds_toward_zero(factor: int) -> None:
    """§1.2: trunc(x * f / 4096), also for negative products that are exact multiples of 4096."""
    rng = np.random.default_rng(factor)
    x = np.concatenate([edge_values(rng, 2000, SPEC.u_max), np.array([SPEC.v_min, SPEC.v_max, SPEC.u_max])])
    x_tensor = tensor(x)
    before = unchanged(x_tensor)
    assert_equal(trunc_decay(x_tensor, factor), trunc_decay_int(x, factor))
    assert_unchanged(before, x_tensor)
    assert trunc_decay(tensor([-4095, -4097, 4097, -8192]), 1).tolist() == [0, -1, 1, -2]  # toward zero, not floor
    assert trunc_decay(tensor([-8191]), 2048).item() == -4095


def test_wrap_u_keeps_lavas_interval() -> None:
    """§3.2: (-2**23, 2**23] modulo 2**24; +2**23 stays, -2**23 becomes +2**23."""
    rng = np.random.default_rng(3)
    edges = np.array([SPEC.u_min, SPEC.u_min - 1, SPEC.u_min + 1, SPEC.u_max, SPEC.u_max + 1, -SPEC.u_max,
                      SPEC.u_modulus, -SPEC.u_modulus, 3 * SPEC.u_max, -3 * SPEC.u_max, 0])
    x = np.concatenate([edges, rng.integers(-3 * SPEC.u_max, 3 * SPEC.u_max, size=3000)])
    assert_equal(wrap_u(tensor(x)), wrap_u_int(x))
    assert wrap_u(tensor([SPEC.u_max, -SPEC.u_max])).tolist() == [SPEC.u_max, SPEC.u_max]


def test_exact_dtype_bounds_and_devices() -> None:
    """§1.1: float32 below 2**24 on the CPU, float64 below 2**53 (and on CUDA, where float32 convolutions may
    run in TF32), an error naming the layer beyond."""
    assert exact_dtype(SPEC.exact_float32_bound - 1, CPU, "x") == torch.float32
    assert exact_dtype(SPEC.exact_float32_bound, CPU, "x") == torch.float64
    assert exact_dtype(1, torch.device("cuda"), "x") == torch.float64
    with pytest.raises(ValueError, match=r"layer 'big': sums up to \d+ would not be exact in float64"):
        exact_dtype(SPEC.exact_float64_bound, CPU, "layer 'big'")


def layer_inputs(rng: np.random.Generator, layer: FixedPointLayer, input_max: int, batch: int) -> np.ndarray:
    """Layer inputs (batch, *input_shape): graded values up to input_max, a third of them at the maximum."""
    x = rng.integers(0, input_max + 1, size=(batch, *layer.input_shape))
    return np.where(rng.random(x.shape) < 0.3, input_max, x)


@SETTINGS
@given(fx_net=networks(), seed=st.integers(0, 2**32 - 1))
def test_synaptic_current_equals_synapse_step(fx_net, seed: int) -> None:
    """§4.2 - §4.7 and §4.9 layer by layer: dense and conv, pooling, binary and 8-bit weights of every sign
    mode, exponents at their limits, both roundings; graded input for layer 0, 0/1 spikes after it."""
    rng = np.random.default_rng(seed)
    for index, layer in enumerate(fx_net.layers):
        input_max = SPEC.input_max if index == 0 else 1
        x = tensor(layer_inputs(rng, layer, input_max, int(rng.integers(1, 5))))
        before = unchanged(x)
        synapse = synapse_constants(layer, input_max, CPU)
        assert_equal(synaptic_current(x, synapse), synapse_step_int(x.numpy(), synapse_params(layer, input_max)))
        recurrent = recurrent_synapse_constants(layer, CPU)
        assert (recurrent is None) == (recurrent_synapse_params(layer) is None)
        if recurrent is not None:
            spikes = tensor(rng.integers(0, 2, size=(3, *layer.output_shape)))
            assert_equal(synaptic_current(spikes, recurrent), synapse_step_int(spikes.numpy(),
                                                                               recurrent_synapse_params(layer)))
        assert_unchanged(before, x)


def random_state(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """u in (-2**23, 2**23] and v in [-(2**23 - 1), 2**23 - 1], half of them at or next to the ends."""
    u = rng.integers(SPEC.u_min + 1, SPEC.u_max + 1, size=shape)
    v = rng.integers(SPEC.v_min, SPEC.v_max + 1, size=shape)
    u = np.where(rng.random(shape) < 0.5, rng.choice([SPEC.u_max, SPEC.u_min + 1, 0, -1, 1], size=shape), u)
    v = np.where(rng.random(shape) < 0.5, rng.choice([SPEC.v_max, SPEC.v_min, 0, -1, 1], size=shape), v)
    return u, v


@SETTINGS
@given(fx_net=networks(), seed=st.integers(0, 2**32 - 1), step=st.integers(0, 14))
def test_lif_step_equals_lif_step_events(fx_net, seed: int, step: int) -> None:
    """§3.1 - §3.7 and the §5.6 events on random states at the register edges and synaptic inputs beyond the
    16-bit activation range (so that u wraps and v saturates), both resets, readouts, bias delays."""
    rng = np.random.default_rng(seed)
    for layer in fx_net.layers:
        shape = (int(rng.integers(1, 4)), *layer.output_shape)
        u, v = random_state(rng, shape)
        a = np.where(rng.random(shape) < 0.5, rng.integers(-2**17, 2**17, size=shape),
                     rng.integers(-64, 65, size=shape))
        expected_spikes, expected, events = lif_step_events_int(a, NeuronState(u, v), neuron_params(layer), step)
        neuron = neuron_constants(layer, CPU)
        state = LIFState(tensor(u), tensor(v))
        before = unchanged(tensor(a), *state)
        got = lif_step(tensor(a), state, neuron, step >= neuron.bias_start)
        assert got.spikes.dtype == torch.bool
        assert_equal(got.spikes.to(torch.int8), expected_spikes)
        assert_equal(got.state.u, expected.u)
        assert_equal(got.state.v, expected.v)
        for name in ("v", "u", "a"):
            assert_equal(getattr(got.events, name), getattr(events, name))
        quiet = lif_step_events_int(a, NeuronState(u, v), neuron_params(layer)._replace(spiking=False), step)
        assert_equal(got.v_before_reset, quiet[1].v)  # the clipped v', before any reset
        assert_unchanged(before, tensor(a), *state)


def test_lif_step_hand_trace_at_the_edges() -> None:
    """Hand-derived single neurons: v saturates at 2**23 - 1 and still fires (§3.3, §3.5), u wraps from
    2**23 + 64 to -2**23 + 64 (§3.2), and a v equal to the threshold does not fire."""
    layer = FixedPointLayer(name="n", kind="dense", input_shape=(1,), weight=np.array([[1]]), du=SPEC.decay_max,
                            dv=0, vth=1, reset="subtract")
    neuron = neuron_constants(layer, CPU)
    saturating = lif_step(tensor([[1]]), LIFState(tensor([[0]]), tensor([[SPEC.v_max]])), neuron, bias_on=True)
    assert saturating.v_before_reset.item() == SPEC.v_max and saturating.events.v.item()
    assert saturating.spikes.item() and saturating.state.v.item() == SPEC.v_max - 64
    wrapping = lif_step(tensor([[SPEC.u_max // 64 + 1]]), initial_state(neuron, 1), neuron, bias_on=True)
    assert wrapping.state.u.item() == SPEC.u_max + 64 - SPEC.u_modulus  # 2**23 + 64 - 2**24
    assert wrapping.events.u.item() and wrapping.events.a.item()
    at_threshold = lif_step(tensor([[1]]), initial_state(neuron, 1), neuron, bias_on=True)
    assert at_threshold.v_before_reset.item() == 64 and not at_threshold.spikes.item()


def test_neuron_constants_and_initial_state() -> None:
    """§3.4 bias (floor for negative exponents), §3.5 threshold << 6, §3.8 zero state; per neuron."""
    rng = np.random.default_rng(9)
    bias_mant = rng.integers(SPEC.bias_mant_min, SPEC.bias_mant_max + 1, size=40)
    bias_exp = rng.integers(SPEC.bias_exp_min, SPEC.bias_exp_max + 1, size=40)
    layer = FixedPointLayer(name="n", kind="dense", input_shape=(2,), weight=np.ones((40, 2), int),
                            vth=rng.integers(0, SPEC.vth_max + 1, size=40), bias_mant=bias_mant, bias_exp=bias_exp,
                            du=7, dv=SPEC.decay_max, bias_delay=3)
    neuron = neuron_constants(layer, CPU)
    assert_equal(neuron.bias, bias_int(bias_mant, bias_exp))
    assert_equal(neuron.threshold, neuron_params(layer).vth_scaled)
    assert (neuron.u_factor, neuron.v_factor, neuron.bias_start) == (SPEC.decay_unity - 8, 1, 3)
    state = initial_state(neuron, 5)
    assert state.u.shape == state.v.shape == (5, 40) and not state.u.any() and not state.v.any()
    assert state.u.data_ptr() != state.v.data_ptr()
