"""Tests for hardware/simulator.py: hand-derived single-neuron traces first, then the synapse pieces and the
Simulator object (the fused path against the step functions on random networks: test_fused.py).

Each trace below is worked out by hand from docs/fixed-point.md; remember the one-step delay (§4.8): the
input of step t reaches the neurons at step t + 1. The traces run through ``simulate``, i.e. the fused path.
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import (
    NeuronParams,
    NeuronState,
    Simulator,
    bias_int,
    dense_weight_int,
    latency,
    lif_step_int,
    shift_int,
    simulate,
    simulate_stepwise,
    synapse_params,
    synapse_step_int,
    trunc_decay_int,
)
from bso_deploy.hardware.spec import SPEC

ONE = 1 << SPEC.state_shift  # a synaptic input of 1 in units of u and v
HALF = SPEC.decay_unity // 2  # dv for tau = 2


def neuron(weight: int = 1, profile: str = "bso", **kwargs) -> FixedPointNetwork:
    kwargs.setdefault("vth", SPEC.vth_max)
    layer = FixedPointLayer(name="n", kind="dense", input_shape=(1,), weight=np.array([[weight]]), **kwargs)
    return FixedPointNetwork(profile, (1,), (layer,))


def trace(net: FixedPointNetwork, inputs: list[int]) -> tuple[list[int], list[int], list[int]]:
    result = simulate(net, np.array(inputs).reshape(-1, 1, 1), record=True)
    return (result.u[0][:, 0, 0].tolist(), result.v[0][:, 0, 0].tolist(), result.spikes[0][:, 0, 0].tolist())


def test_slowest_decays_du_0_dv_0() -> None:
    # du = 0 still decays u by 1/4096 (§3.1): 64 -> trunc(64 * 4095 / 4096) = 63 -> 62; dv = 0: no leak.
    u, v, s = trace(neuron(du=0, dv=0), [1, 0, 0, 0])
    assert u == [0, ONE, ONE - 1, ONE - 2]
    assert v == [0, ONE, 2 * ONE - 1, 3 * ONE - 3]
    assert s == [0, 0, 0, 0]


def test_decay_truncates_toward_zero_for_negative_states() -> None:
    # -128 * 4095 / 4096 = -127.97 -> -127 (floor would give -128).
    u, v, _ = trace(neuron(weight=-2, du=0, dv=0), [1, 0, 0])
    assert u == [0, -2 * ONE, -2 * ONE + 1]
    assert v == [0, -2 * ONE, -4 * ONE + 1]
    # dv = 2048 halves v: -192, -96, ..., -3, then trunc(-1.5) = -1, then trunc(-0.5) = 0.
    _, v, _ = trace(neuron(weight=-3, du=SPEC.decay_max, dv=HALF), [1] + [0] * 9)
    assert v == [0, -192, -96, -48, -24, -12, -6, -3, -1, 0]


def test_fastest_decays_du_4095_dv_4095() -> None:
    # du = 4095 clears u (u = a << 6); dv = 4095 keeps trunc(v / 4096), 0 for |v| < 4096.
    u, v, _ = trace(neuron(du=SPEC.decay_max, dv=SPEC.decay_max), [3, 5, 0, 0])
    assert u == [0, 3 * ONE, 5 * ONE, 0]
    assert v == [0, 3 * ONE, 5 * ONE, 0]
    big = 100  # a = 10000, v = 640000; the next step keeps trunc(640000 / 4096) = 156
    _, v, _ = trace(neuron(weight=big, du=SPEC.decay_max, dv=SPEC.decay_max), [big, 0, 0])
    assert v == [0, big * big * ONE, big * big * ONE // SPEC.decay_unity]


def test_u_wraps_at_2_pow_23() -> None:
    # weight 128 << 3 and input 128 give a = 2**17, so u = a << 6 = 2**23 (kept: Lava's interval, §3.2).
    net = neuron(weight=128, weight_exp=3, du=SPEC.decay_max, dv=SPEC.decay_max, spiking=False)
    u, _, _ = trace(net, [128, 129, SPEC.input_max, 0, 0])
    a = [0, 128 * 128 * 8, 129 * 128 * 8, 255 * 128 * 8, 0]
    assert u[1] == SPEC.u_max
    assert u == [0, a[1] * ONE, a[2] * ONE - SPEC.u_modulus, a[3] * ONE - SPEC.u_modulus, 0]
    u, _, _ = trace(neuron(weight=-128, weight_exp=3, du=SPEC.decay_max, spiking=False), [128, 129, 0])
    assert u == [0, SPEC.u_max, SPEC.u_modulus - a[2] * ONE]  # -2**23 itself wraps to +2**23


def test_v_saturates_both_ways() -> None:
    # a = 128 * 128 << 2 = 2**16: u = 2**22 per step, no leak: 2**22, then 2**23 -> clipped to 2**23 - 1.
    net = neuron(weight=128, weight_exp=2, du=SPEC.decay_max, dv=0, spiking=False)
    _, v, _ = trace(net, [128, 128, 128, 0])
    assert v == [0, SPEC.u_max // 2, SPEC.v_max, SPEC.v_max]
    net = neuron(weight=-128, weight_exp=2, du=SPEC.decay_max, dv=0, spiking=False)
    _, v, _ = trace(net, [128, 128, 128, 0])
    assert v == [0, -SPEC.u_max // 2, SPEC.v_min, SPEC.v_min]


def test_negative_bias_with_negative_exponent_floors() -> None:
    assert bias_int(np.array([-3, -5, 5, -1, 1, -3]), np.array([-1, -2, -2, -8, -8, 2])).tolist() == [
        -2, -2, 1, -1, 0, -12]
    _, v, _ = trace(neuron(dv=0, bias_mant=-3, bias_exp=-1), [0, 0, 0])
    assert v == [-2, -4, -6]  # bias_delay = 0: the bias is added from the first step on, with no input
    _, v, _ = trace(neuron(dv=0, bias_mant=SPEC.bias_mant_min, bias_exp=SPEC.bias_exp_max, spiking=False), [0, 0])
    assert v == [SPEC.bias_mant_min << SPEC.bias_exp_max, 2 * (SPEC.bias_mant_min << SPEC.bias_exp_max)]


def test_bias_starts_at_bias_delay() -> None:
    # The bias is added at steps t >= bias_delay only (§3.4); before that v integrates the input alone.
    _, v, _ = trace(neuron(dv=0, bias_mant=-3, bias_exp=-1, bias_delay=2), [0, 0, 0, 0, 0])
    assert v == [0, 0, -2, -4, -6]
    # du = 4095, dv = 2048 (halving), vth << 6 = 64, bias 40; the input of step 0 arrives at step 1 (§4.8).
    # bias_delay = 1: v = 0; 0 + 64 + 40 = 104 fires -> 0; 40; 20 + 40 = 60; 30 + 40 = 70 fires -> 0; 40.
    u, v, s = trace(neuron(du=SPEC.decay_max, dv=HALF, vth=1, bias_mant=40, bias_delay=1), [1, 0, 0, 0, 0, 0])
    assert u == [0, ONE, 0, 0, 0, 0]
    assert (v, s) == ([0, 0, 40, 60, 0, 40], [0, 1, 0, 0, 1, 0])
    # bias_delay = 0 (the old rule) adds it at step 0 too: v = 40 there, 20 + 64 + 40 at step 1.
    _, v, s = trace(neuron(du=SPEC.decay_max, dv=HALF, vth=1, bias_mant=40), [1, 0, 0, 0, 0, 0])
    assert (v[:2], s[:2]) == ([40, 0], [0, 1])
    # bias_delay = 3: 64 = vth << 6 does not fire (strict); 32; 16 + 40 = 56; 28 + 40 = 68 fires -> 0; 40.
    _, v, s = trace(neuron(du=SPEC.decay_max, dv=HALF, vth=1, bias_mant=40, bias_delay=3), [1, 0, 0, 0, 0, 0])
    assert (v, s) == ([0, ONE, 32, 56, 0, 40], [0, 0, 0, 0, 1, 0])
    # a delay at or beyond the run's length: no bias at all
    _, v, _ = trace(neuron(dv=0, bias_mant=5, bias_delay=4), [0, 0, 0, 0])
    assert v == [0, 0, 0, 0]


def test_readout_adds_its_bias_once_per_input_step() -> None:
    """With bias_delay = k + 1 for layer k and `latency` zero steps appended, every layer's bias is added
    exactly T times over the T + latency steps: the readout's last v is the float sum shifted (§3.7, §5.2)."""
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(1,), weight=np.array([[2]]),
                             du=SPEC.decay_max, dv=SPEC.decay_max, vth=1, bias_mant=-10, bias_delay=1)
    readout = FixedPointLayer(name="readout", kind="dense", input_shape=(1,), weight=np.array([[3]]),
                              du=SPEC.decay_max, dv=0, bias_mant=7, bias_delay=2, spiking=False)
    net = FixedPointNetwork("bso", (1,), (hidden, readout))
    inputs = append_zero_steps(np.array([1, 0, 1]).reshape(3, 1, 1), net.latency)
    result = simulate(net, inputs, record=True)
    # hidden: v = 0; 128 - 10 fires -> 0; -10; trunc(-10 / 4096) + 128 - 10 fires -> 0; -10
    assert result.v[0][:, 0, 0].tolist() == [0, 0, -10, 0, -10]
    assert result.spikes[0][:, 0, 0].tolist() == [0, 1, 0, 1, 0]  # the input [1, 0, 1] shifted by 1
    # readout: no bias at steps 0, 1; then 192 + 7; + 7; + 192 + 7: two spikes and T = 3 biases
    assert result.output[:, 0, 0].tolist() == [0, 0, 3 * ONE + 7, 3 * ONE + 14, 2 * 3 * ONE + 3 * 7]


def test_weight_exponent_shifts_the_sum_with_floor() -> None:
    assert shift_int(np.array([-3, 3, -1, 5]), -1).tolist() == [-2, 1, -1, 2]
    assert shift_int(np.array([-3, 3]), 2).tolist() == [-12, 12]
    u, _, _ = trace(neuron(weight=-3, weight_exp=-1, du=SPEC.decay_max), [1, 0])
    assert u == [0, -2 * ONE]  # -3 >> 1 = -2, not trunc(-1.5) = -1


@pytest.mark.parametrize(("reset", "expected_v", "expected_s"), [
    ("zero", [0, 0, 0, 0, 0], [0, 1, 1, 0, 0]),
    ("subtract", [0, ONE, 2 * ONE, ONE, ONE], [0, 1, 1, 1, 0]),
])
def test_subtract_versus_zero_reset(reset: str, expected_v, expected_s) -> None:
    # vth = 1 -> vth << 6 = 64; input 2 -> u = 128 per step; dv = 0.
    u, v, s = trace(neuron(du=SPEC.decay_max, dv=0, vth=1, reset=reset), [2, 2, 0, 0, 0])
    assert u == [0, 2 * ONE, 2 * ONE, 0, 0]
    assert (v, s) == (expected_v, expected_s)


def test_threshold_is_strict() -> None:
    # v = 64 = vth << 6 exactly: no spike; one more (bias 1) fires.
    _, v, s = trace(neuron(du=SPEC.decay_max, dv=SPEC.decay_max, vth=1), [1, 0])
    assert (v, s) == ([0, ONE], [0, 0])
    _, v, s = trace(neuron(du=SPEC.decay_max, dv=SPEC.decay_max, vth=1, bias_mant=1), [1, 0])
    assert (v, s) == ([1, 0], [0, 1])
    _, v, s = trace(neuron(du=SPEC.decay_max, dv=SPEC.decay_max, vth=0), [0, 1, 0])
    assert (v, s) == ([0, 0, 0], [0, 0, 1])  # vth = 0: v = 0 does not fire, v = 64 does


def test_one_step_delay_per_layer_and_readout() -> None:
    def layer(name: str, dv: int = SPEC.decay_max, spiking: bool = True) -> FixedPointLayer:
        return FixedPointLayer(name=name, kind="dense", input_shape=(1,), weight=np.array([[1]]),
                               du=SPEC.decay_max, dv=dv, vth=0, spiking=spiking)

    net = FixedPointNetwork("bso", (1,), (layer("a"), layer("b"), layer("out", dv=0, spiking=False)))
    assert latency(net) == net.latency == 3
    inputs = append_zero_steps(np.array([1, 0, 1]).reshape(3, 1, 1), latency(net))
    result = simulate(net, inputs, record=True)
    assert result.spikes[0][:, 0, 0].tolist() == [0, 1, 0, 1, 0, 0]
    assert result.spikes[1][:, 0, 0].tolist() == [0, 0, 1, 0, 1, 0]
    assert not result.spikes[2].any()
    assert result.output[:, 0, 0].tolist() == [0, 0, 0, ONE, ONE, 2 * ONE]  # running sum of a << 6
    np.testing.assert_array_equal(result.output, result.v[2])


def test_lava_dense_weight_truncation() -> None:
    mixed = np.array([[1, -1, 3, -3, 2, -2, SPEC.weight_max, SPEC.weight_min]])
    assert dense_weight_int(mixed).tolist() == [[0, -2, 2, -4, 2, -2, SPEC.weight_max - 1, SPEC.weight_min]]
    assert dense_weight_int(np.array([[SPEC.weight_max, 1, 0]])).tolist() == [[SPEC.weight_max, 1, 0]]
    assert dense_weight_int(np.array([[SPEC.weight_min, -1]])).tolist() == [[-SPEC.weight_max, -1]]
    u, _, _ = trace(neuron(weight=1, du=SPEC.decay_max), [1, 0])
    assert u == [0, ONE]  # a lone +1 is excitatory: kept
    net = FixedPointNetwork("bso", (2,), (FixedPointLayer(name="m", kind="dense", input_shape=(2,),
                                                          weight=np.array([[1, -1]]), du=SPEC.decay_max),))
    result = simulate(net, np.ones((2, 1, 2), dtype=np.int64), record=True)
    assert result.u[0][:, 0, 0].tolist() == [0, -2 * ONE]  # mixed: 1 -> 0 and -1 -> -2


def test_binary_layer_scales_by_weight_mant_before_the_shift() -> None:
    layer = FixedPointLayer(name="b", kind="dense", input_shape=(3,), weight=np.array([[1, -1, -1]]),
                            binary=True, weight_mant=3, weight_exp=-1)
    synapse = synapse_params(layer, 1)
    a = synapse_step_int(np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=np.int8), synapse)
    assert a.tolist() == [[1], [-2], [-3], [-2]]  # (3 * S) >> 1: 3 >> 1, -3 >> 1, -6 >> 1, -3 >> 1


def _conv_by_loops(x, weight, stride, padding, pool):
    batch, channels, height, width = x.shape
    x = x.reshape(batch, channels, height // pool[0], pool[0], width // pool[1], pool[1]).sum(axis=(3, 5))
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    out_c, _, kernel_h, kernel_w = weight.shape
    out_h = (x.shape[2] - kernel_h) // stride[0] + 1
    out_w = (x.shape[3] - kernel_w) // stride[1] + 1
    out = np.zeros((batch, out_c, out_h, out_w), dtype=np.int64)
    for b in range(batch):
        for o in range(out_c):
            for i in range(out_h):
                for j in range(out_w):
                    patch = x[b, :, i * stride[0]:i * stride[0] + kernel_h, j * stride[1]:j * stride[1] + kernel_w]
                    out[b, o, i, j] = (patch * weight[o]).sum()
    return out


@pytest.mark.parametrize(("stride", "padding", "pool", "binary"), [
    ((1, 1), (1, 1), (1, 1), True), ((2, 1), (0, 2), (1, 1), False), ((1, 2), (1, 0), (2, 2), True)])
def test_conv_and_sum_pool_match_explicit_loops(stride, padding, pool, binary) -> None:
    rng = np.random.default_rng(3)
    if binary:
        weight = rng.choice(SPEC.binary_weight_values, size=(3, 2, 3, 2))
        effective = weight * 5
    else:
        weight = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=(3, 2, 3, 2))
        effective = dense_weight_int(weight)
    layer = FixedPointLayer(name="c", kind="conv", input_shape=(2, 8, 6), weight=weight, binary=binary,
                            weight_mant=5 if binary else 1, weight_exp=-2, stride=stride, padding=padding, pool=pool)
    x = (rng.random((4, 2, 8, 6)) < 0.5).astype(np.int8)
    expected = _conv_by_loops(x.astype(np.int64), effective, stride, padding, pool) >> 2
    np.testing.assert_array_equal(synapse_step_int(x, synapse_params(layer, 1)), expected)


def test_step_functions_do_not_mutate_their_inputs() -> None:
    rng = np.random.default_rng(0)
    state = NeuronState(u=rng.integers(SPEC.u_min, SPEC.u_max, size=(2, 5)),
                        v=rng.integers(SPEC.v_min, SPEC.v_max, size=(2, 5)))
    a = rng.integers(-1000, 1000, size=(2, 5))
    params = NeuronParams(du=7, dv=9, vth_scaled=np.full(5, 100 * ONE), bias=np.arange(5), reset="subtract",
                          spiking=True, bias_delay=1)
    copies = [state.u.copy(), state.v.copy(), a.copy(), params.vth_scaled.copy(), params.bias.copy()]
    spikes, new_state = lif_step_int(a, state, params, 0)
    later_spikes, later_state = lif_step_int(a, state, params, 1)
    for before, after in zip(copies, [state.u, state.v, a, params.vth_scaled, params.bias]):
        np.testing.assert_array_equal(before, after)
    assert new_state.u is not state.u and spikes.dtype == np.int8
    # the step index only switches the bias on: before bias_delay as without a bias, from then on as with it
    unbiased = lif_step_int(a, state, params._replace(bias=np.zeros(5, np.int64)), 0)
    biased = lif_step_int(a, state, params._replace(bias_delay=0), 0)
    for ours, theirs in ((spikes, unbiased[0]), (new_state.v, unbiased[1].v), (later_spikes, biased[0]),
                         (later_state.v, biased[1].v), (later_state.u, new_state.u)):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(new_state.v, later_state.v)
    x = rng.integers(-9, 9, size=7)
    x_copy = x.copy()
    trunc_decay_int(x, 5)
    shift_int(x, -2)
    np.testing.assert_array_equal(x, x_copy)


def test_input_validation_and_record_flag() -> None:
    net = neuron()
    with pytest.raises(ValueError, match="must be integers"):
        simulate(net, np.zeros((2, 1, 1)))
    with pytest.raises(ValueError, match=rf"\[0, {SPEC.input_max}\]"):
        simulate(net, np.full((2, 1, 1), SPEC.input_max + 1))
    with pytest.raises(ValueError, match=r"\[0, "):
        simulate(net, np.full((2, 1, 1), -1))
    with pytest.raises(ValueError, match=r"shape \(T, batch"):
        simulate(net, np.zeros((2, 1), dtype=int))
    result = simulate(net, np.ones((3, 2, 1), dtype=np.uint8))
    assert result.u == () and result.v == ()
    assert result.spikes[0].shape == (3, 2, 1) and result.output.dtype == np.int64


def test_digits_sized_network_runs_the_fused_path_exactly() -> None:
    """Batch 256 of a 64-256-256-10 network at T = 8 (+ latency): active layers, and the prepared fused path
    equals the step loop. How fast each is, is measured by ``bso-deploy bench sim`` (us per sample, the dense
    floor, and the fused path against the step loop), not asserted here: wall-clock limits in unit tests fail
    on a loaded machine."""
    rng = np.random.default_rng(0)
    sizes, layers = (64, 256, 256, 10), []
    for index in range(3):
        binary = index == 1
        weight = rng.choice(SPEC.binary_weight_values, size=(sizes[index + 1], sizes[index])) if binary else \
            2 * rng.integers(-SPEC.weight_mant_max, SPEC.weight_mant_max + 1, size=(sizes[index + 1], sizes[index]))
        layers.append(FixedPointLayer(name=f"l{index}", kind="dense", input_shape=(sizes[index],), weight=weight,
                                      binary=binary, weight_mant=9 if binary else 1, weight_exp=-4,
                                      du=SPEC.decay_max, dv=HALF, vth=rng.integers(1, 60, size=sizes[index + 1]),
                                      reset="subtract", spiking=index < 2))
    net = FixedPointNetwork("bso", (64,), tuple(layers))
    inputs = append_zero_steps(rng.integers(0, SPEC.input_max + 1, size=(8, 256, 64)), net.latency)
    result = simulate(net, inputs)
    assert result.spikes[0].any() and result.spikes[1].any()
    prepared, stepwise = Simulator(net).run(inputs), simulate_stepwise(net, inputs)
    for fused in (result, prepared):
        np.testing.assert_array_equal(fused.output, stepwise.output)
        for ours, theirs in zip(fused.spikes, stepwise.spikes):
            np.testing.assert_array_equal(ours, theirs)


def assert_same_run(fx_net: FixedPointNetwork, inputs: np.ndarray, result=None) -> None:
    """The fused path (``simulate``, or the given result of it) equals the step functions exactly."""
    expected = simulate_stepwise(fx_net, inputs, record=True)
    actual = simulate(fx_net, inputs, record=True) if result is None else result
    for index, layer in enumerate(fx_net.layers):
        for name in ("spikes", "u", "v"):
            ours, theirs = getattr(expected, name)[index], getattr(actual, name)[index]
            assert theirs.dtype == ours.dtype and theirs.shape == ours.shape, f"{layer.name} {name}"
            np.testing.assert_array_equal(theirs, ours, err_msg=f"{layer.name}: {name}")
    np.testing.assert_array_equal(actual.output, expected.output)
    assert actual.output.dtype == expected.output.dtype
    assert_same_saturation(expected, actual, fx_net)
    plain = simulate(fx_net, inputs)
    for ours, theirs in zip(expected.spikes, plain.spikes):
        np.testing.assert_array_equal(theirs, ours)
    np.testing.assert_array_equal(plain.output, expected.output)


def assert_same_saturation(expected, actual, fx_net: FixedPointNetwork) -> None:
    """The saturation counts of §5.6, per layer and event, equal (int64, shape (batch, *shape))."""
    assert len(actual.saturation) == len(expected.saturation) == len(fx_net.layers)
    for layer, ours, theirs in zip(fx_net.layers, expected.saturation, actual.saturation):
        for name, mine, other in zip(ours._fields, ours, theirs):
            assert other.dtype == mine.dtype == np.int64, f"{layer.name} saturation {name}"
            np.testing.assert_array_equal(other, mine, err_msg=f"{layer.name}: saturation {name}")


def run_all(fx_net: FixedPointNetwork, inputs: np.ndarray):
    """simulate (fused), simulate_stepwise and the torch reference, checked equal on spikes, u, v, output and
    saturation counts; returns simulate's result."""
    from bso_deploy.hardware.torch_reference import TorchReference

    result = simulate(fx_net, inputs, record=True)
    assert_same_run(fx_net, inputs, result)
    theirs = TorchReference(fx_net, device="cpu").run(inputs, record=True)
    for name in ("spikes", "u", "v"):
        for index, (ours, other) in enumerate(zip(getattr(result, name), getattr(theirs, name))):
            np.testing.assert_array_equal(other, ours, err_msg=f"layer {index}: {name}")
    np.testing.assert_array_equal(theirs.output, result.output)
    assert_same_saturation(result, theirs, fx_net)
    return result


def test_simulator_object_runs_again_from_zero_state() -> None:
    """A Simulator reused across runs of other lengths and batches starts each from the zero state (§3.8)."""
    rng = np.random.default_rng(11)
    layers = (FixedPointLayer(name="a", kind="dense", input_shape=(6,), weight=rng.integers(-40, 41, size=(5, 6)),
                              weight_exp=-3, du=100, dv=300, vth=rng.integers(0, 30, size=5), bias_mant=-7,
                              bias_exp=-1, reset="subtract"),
              FixedPointLayer(name="b", kind="dense", input_shape=(5,), weight=rng.choice([-1, 1], size=(3, 5)),
                              binary=True, weight_mant=9, du=SPEC.decay_max, dv=0, spiking=False, bias_delay=2))
    net = FixedPointNetwork("bso", (6,), layers)
    runner = Simulator(net)
    for steps, batch in ((7, 3), (7, 3), (4, 5), (30, 1), (7, 3)):
        inputs = rng.integers(0, SPEC.input_max + 1, size=(steps, batch, 6))
        assert_same_run(net, inputs, runner.run(inputs, record=True))
        np.testing.assert_array_equal(runner.run(inputs).output, simulate_stepwise(net, inputs).output)
