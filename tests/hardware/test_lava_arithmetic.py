"""hardware/lava/arithmetic.py, the Lava models' own reading of docs/fixed-point.md §3 - §4: the spec's worked
examples first, then many random cases (edge values included) against the NumPy simulator's step functions,
with ``assert_array_equal``. Pure NumPy, no Lava runtime; the Lava runs of tests/hardware/test_lava_*.py check
the models' wiring around this arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware import step_functions as reference
from bso_deploy.hardware.lava import arithmetic
from bso_deploy.hardware.network import FixedPointLayer
from bso_deploy.hardware.spec import SPEC

EDGE_STATES = np.array([0, 1, -1, 4095, -4095, 4096, -4097, SPEC.v_max, -SPEC.v_max, SPEC.u_max, SPEC.u_min])


def test_the_spec_examples() -> None:
    """§1.2, §3.2, §3.4, §4.5, §4.7 as written."""
    assert arithmetic.truncating_decay(np.array([-3, 3, -4096, -4097, 4097]), 2048).tolist() == [-1, 1, -2048, -2048,
                                                                                                  2048]
    assert arithmetic.truncating_decay(np.array([-1, -4095]), 1).tolist() == [0, 0]  # toward zero, not -1
    wrapped, changed = arithmetic.wrap_current(np.array([1 << 23, -(1 << 23), (1 << 23) + 1, -(1 << 23) + 1,
                                                         3 << 24]))
    assert wrapped.tolist() == [1 << 23, 1 << 23, -(1 << 23) + 1, -(1 << 23) + 1, 0]
    assert changed.tolist() == [False, True, True, False, True]
    clipped, changed = arithmetic.saturate_voltage(np.array([SPEC.v_max + 1, -SPEC.v_max - 5, 7]))
    assert clipped.tolist() == [SPEC.v_max, -SPEC.v_max, 7] and changed.tolist() == [True, True, False]
    assert arithmetic.bias_value(np.array([-3, 3, 5, -1, -4096]), np.array([-1, -1, 2, -8, 7])).tolist() == [
        -2, 1, 20, -1, -4096 * 128]
    mixed = arithmetic.lava_dense_weights(np.array([1, -1, 2, -2, 255, -255, -256]))
    assert mixed.tolist() == [0, -2, 2, -2, 254, -256, -256]
    assert arithmetic.lava_dense_weights(np.array([0, 1, 255])).tolist() == [0, 1, 255]  # excitatory: kept
    assert arithmetic.lava_dense_weights(np.array([-256, -3, 0])).tolist() == [-255, -3, 0]  # inhibitory clip
    sums = np.array([-3, 3, -5, 0, -1, 1])
    assert arithmetic.shift_sum(sums, -1, "nearest").tolist() == [-1, 2, -2, 0, 0, 1]
    assert arithmetic.shift_sum(sums, -1, "floor").tolist() == [-2, 1, -3, 0, -1, 0]
    assert arithmetic.shift_sum(np.array([-5]), -2, "nearest").tolist() == [-1]
    assert arithmetic.shift_sum(sums, 3, "nearest").tolist() == (sums * 8).tolist()


def test_neuron_hand_trace() -> None:
    """du = 4095 (u = a << 6), dv = 0, vth = 10 (640), B = -3 >> 1 = -2 from step 2, subtractive reset:
    v = 320, 640 (not > 640), 958 -> fires, 318."""
    config = arithmetic.neuron_config(du=SPEC.decay_max, dv=0, vth=np.array([10]), bias_mant=np.array([-3]),
                                      bias_exp=np.array([-1]), bias_delay=2, reset="subtract", spiking=True)
    u = v = np.zeros(1, np.int64)
    seen = []
    for step in range(3):
        update = arithmetic.neuron_step(u, v, np.array([5]), step, config)
        u, v = update.u, update.v
        seen.append((int(update.spikes[0]), int(update.v_before_reset[0]), int(v[0]), int(update.current[0])))
    assert seen == [(0, 320, 320, 320), (0, 640, 640, 320), (1, 958, 318, 318)]


def _random_neuron(rng: np.random.Generator, shape: tuple[int, ...]) -> dict:
    def pick(edges, low, high):
        return int(rng.choice(edges)) if rng.random() < 0.4 else int(rng.integers(low, high + 1))

    return dict(du=pick((0, 1, SPEC.decay_max - 1, SPEC.decay_max), 0, SPEC.decay_max),
                dv=pick((0, 1, SPEC.decay_unity // 2, SPEC.decay_max), 0, SPEC.decay_max),
                vth=rng.integers(0, SPEC.vth_max + 1, shape) >> int(rng.integers(0, 17)),
                bias_mant=rng.integers(SPEC.bias_mant_min, SPEC.bias_mant_max + 1, shape),
                bias_exp=rng.integers(SPEC.bias_exp_min, SPEC.bias_exp_max + 1, shape),
                bias_delay=int(rng.integers(0, 3)), reset=str(rng.choice(["zero", "subtract"])),
                spiking=bool(rng.random() < 0.7))


def test_neuron_step_equals_the_simulator_step_functions() -> None:
    """40 random populations: random registers, states over the whole 24-bit range (edge values mixed in) and
    synaptic inputs far beyond 2**15 (so that u wraps and v saturates): spikes, u, v, v before reset,
    u + bias(t) and the events of §5.6 equal the simulator's ``lif_step_events_int``, step after step."""
    seen = {"spikes": 0, "u_wrapped": 0, "v_clipped": 0, "a": 0}
    for seed in range(40):
        rng = np.random.default_rng(seed)
        shape = (3, int(rng.integers(1, 9)))
        registers = _random_neuron(rng, shape)
        config = arithmetic.neuron_config(**registers)
        scalars = {key: value for key, value in registers.items() if np.ndim(value) == 0}
        layer = FixedPointLayer("n", "dense", (1,), weight=np.ones((shape[1], 1), np.int64), **scalars)
        params = reference.neuron_params(layer)._replace(
            vth_scaled=np.asarray(registers["vth"]) << SPEC.state_shift,
            bias=reference.bias_int(registers["bias_mant"], registers["bias_exp"]))
        u = rng.integers(SPEC.u_min, SPEC.u_max + 1, shape)
        v = rng.integers(SPEC.v_min, SPEC.v_max + 1, shape)
        u.flat[:3], v.flat[-3:] = rng.choice(EDGE_STATES, 3), rng.choice(EDGE_STATES, 3)
        state = reference.NeuronState(u=u, v=v)
        for step in range(5):
            scale = int(rng.choice([1 << 4, 1 << 15, 1 << 20]))
            a = rng.integers(-scale, scale + 1, shape)
            update = arithmetic.neuron_step(state.u, state.v, a, step, config)
            spikes, expected, events = reference.lif_step_events_int(a, state, params, step)
            _, before_reset = reference.lif_step_int(a, state, params._replace(spiking=False), step)
            bias = params.bias if step >= params.bias_delay else 0
            pairs = {"spikes": (update.spikes, spikes), "u": (update.u, expected.u), "v": (update.v, expected.v),
                     "v_before_reset": (update.v_before_reset, before_reset.v),
                     "current": (update.current, expected.u + bias), "u_wrapped": (update.u_wrapped, events.u),
                     "v_clipped": (update.v_clipped, events.v), "a": (update.a_out_of_range, events.a)}
            for name, (got, want) in pairs.items():
                np.testing.assert_array_equal(got, want, err_msg=f"seed {seed} step {step}: {name}")
                if name in seen:
                    seen[name] += int(np.count_nonzero(want))
            state = expected
    assert all(count > 0 for count in seen.values()), seen


def _random_synapse(rng: np.random.Generator, kind: str, binary: bool) -> FixedPointLayer:
    if kind == "dense":
        pool = ((1, 1), (2, 2), (1, 2))[int(rng.integers(0, 3))]
        input_shape = (int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4)))
        fan_in = input_shape[0] * (input_shape[1] // pool[0]) * (input_shape[2] // pool[1])
        weight_shape, geometry = (int(rng.integers(1, 12)), fan_in), {}
    else:
        pool = ((1, 1), (2, 2))[int(rng.integers(0, 2))]
        kernel = int(rng.integers(1, 4))
        input_shape = (int(rng.integers(1, 4)), 2 * int(rng.integers(3, 6)), 2 * int(rng.integers(3, 6)))
        weight_shape = (int(rng.integers(1, 5)), input_shape[0], kernel, kernel)
        geometry = dict(stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                        padding=(int(rng.integers(0, 2)), int(rng.integers(0, 2))))
    if binary:
        weights = dict(weight=rng.choice(SPEC.binary_weight_values, weight_shape), binary=True,
                       weight_mant=int(rng.integers(1, SPEC.weight_mant_max + 1)))
    else:
        weight = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, weight_shape)
        mode = rng.random()
        weight = np.abs(weight) % (SPEC.weight_max + 1) if mode < 0.25 else (-np.abs(weight) if mode < 0.5 else weight)
        weights = dict(weight=weight)
    return FixedPointLayer("s", kind, input_shape, pool=pool, **geometry, **weights,
                           weight_exp=int(rng.integers(SPEC.weight_exp_min, SPEC.weight_exp_max + 1)),
                           shift_rounding=str(rng.choice(["floor", "nearest"])))


@pytest.mark.parametrize("seed", range(60))
def test_synapse_step_equals_the_simulator_step_functions(seed: int) -> None:
    """Dense (pooled and flattened) and conv (stride, padding, pooling) synapses, binary or full precision in
    every sign mode of §4.5, every exponent and both roundings, on graded and spike inputs."""
    rng = np.random.default_rng(seed)
    layer = _random_synapse(rng, ("dense", "conv")[seed % 2], bool(seed % 4 >= 2))
    input_max = int(rng.choice([1, SPEC.input_max]))
    config = arithmetic.synapse_config(weight=layer.weight, binary=layer.binary, weight_mant=layer.weight_mant,
                                       weight_exp=layer.weight_exp, kind=layer.kind, pool=layer.pool,
                                       stride=layer.stride, padding=layer.padding, shift_rounding=layer.shift_rounding)
    x = rng.integers(0, input_max + 1, (4, *layer.input_shape))
    x[0] = 0
    got = arithmetic.synapse_step(x, config)
    expected = reference.synapse_step_int(x, reference.synapse_params(layer, input_max))
    np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}: {layer.kind} binary={layer.binary}")
    assert got.shape == (4, *layer.output_shape) and got.dtype == np.int64
    # the int64 connection, which synapse_step takes where float64 would not be exact, gives the same sums
    pooled = arithmetic.sum_pool(x, layer.pool)
    exact = arithmetic.connect(pooled, config.weight, layer.kind, layer.stride, layer.padding)
    assert exact.dtype == np.int64
    np.testing.assert_array_equal(arithmetic.shift_sum(exact, layer.weight_exp, layer.shift_rounding), expected)


def test_float_connection_of_the_float_graph() -> None:
    """The same connection in float64 (the floating_pt synapse): equal to the integer one on integer-valued
    floats, and conv equal to a direct sum over the window."""
    rng = np.random.default_rng(7)
    weight = rng.normal(size=(3, 2, 3, 3))
    x = rng.random((2, 2, 6, 6))
    acc = arithmetic.connect(x, weight, "conv", (2, 1), (1, 0))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    direct = np.array([[[[np.sum(padded[b, :, 2 * i:2 * i + 3, j:j + 3] * weight[o]) for j in range(4)]
                         for i in range(3)] for o in range(3)] for b in range(2)])
    np.testing.assert_allclose(acc, direct, rtol=1e-12, atol=1e-12)
    integers = rng.integers(-9, 10, (2, 2, 6, 6))
    kernel = rng.integers(-5, 6, (3, 2, 3, 3))
    np.testing.assert_array_equal(arithmetic.connect(integers.astype(float), kernel.astype(float), "conv", (1, 1),
                                                     (1, 1)),
                                  arithmetic.connect(integers, kernel, "conv", (1, 1), (1, 1)))
    np.testing.assert_array_equal(arithmetic.sum_pool(integers.astype(float), (2, 3)),
                                  integers.reshape(2, 2, 3, 2, 2, 3).sum(axis=(3, 5)))


def test_bad_registers_are_refused() -> None:
    with pytest.raises(ValueError, match="reset"):
        arithmetic.neuron_config(du=0, dv=0, vth=0, bias_mant=0, bias_exp=0, bias_delay=0, reset="hold",
                                 spiking=True)
    with pytest.raises(ValueError, match="shift_rounding"):
        arithmetic.synapse_config(weight=np.ones((1, 1), np.int64), binary=False, weight_mant=1, weight_exp=-1,
                                  kind="dense", pool=(1, 1), stride=(1, 1), padding=(0, 0), shift_rounding="trunc")
