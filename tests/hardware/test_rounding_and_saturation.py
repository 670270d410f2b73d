"""docs/fixed-point.md §4.7 (shift_rounding "nearest") and §5.6 (saturation counts) in the simulator's step
functions, its fused path and the torch reference: hand-derived single-neuron cases first, then random
networks built so that v saturates, u wraps and |a| exceeds 2**15 - 1, where all three must agree exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware import fused
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.simulator import shift_int, simulate_stepwise, synapse_params, synapse_step_int
from bso_deploy.hardware.spec import SPEC
from fixed_point_strategies import networks, replace_layer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_simulator import run_all

ONE = 1 << SPEC.state_shift


def neuron(weight: int, rounding: str = "nearest", **kwargs) -> FixedPointNetwork:
    kwargs.setdefault("vth", SPEC.vth_max)
    kwargs.setdefault("du", SPEC.decay_max)
    layer = FixedPointLayer(name="n", kind="dense", input_shape=(1,), weight=np.array([[weight]]),
                            shift_rounding=rounding, **kwargs)
    return FixedPointNetwork("bso", (1,), (layer,))




def counts(result, layer: int = 0) -> tuple[list[int], list[int], list[int]]:
    """(v, u, a) counts of batch element 0 of a one-neuron layer."""
    saturation = result.saturation[layer]
    return int(saturation.v[0, 0]), int(saturation.u[0, 0]), int(saturation.a[0, 0])


def test_nearest_rounds_halves_up_and_floor_rounds_down() -> None:
    values = np.array([-3, 3, -5, 0, -1, 1, -2, 2])
    assert shift_int(values, -1, "nearest").tolist() == [-1, 2, -2, 0, 0, 1, -1, 1]
    assert shift_int(values, -1, "floor").tolist() == [-2, 1, -3, 0, -1, 0, -1, 1]
    assert shift_int(np.array([-5, -6, -7, 5, 6]), -2, "nearest").tolist() == [-1, -1, -2, 1, 2]
    assert shift_int(values, 2, "nearest").tolist() == (values * 4).tolist()  # e >= 0: no rounding at all
    # per-neuron exponents (the bias, §3.4, always floors; here checked for the elementwise nearest)
    assert shift_int(np.array([-3, -5, 3]), np.array([-1, -2, 1]), "nearest").tolist() == [-1, -1, 6]
    with pytest.raises(ValueError, match="rounding"):
        shift_int(values, -1, "trunc")


@pytest.mark.parametrize(("weight", "weight_exp", "rounding", "a"), [
    (-3, -1, "nearest", -1), (3, -1, "nearest", 2), (-5, -2, "nearest", -1), (0, -3, "nearest", 0),
    (-3, -1, "floor", -2), (3, -1, "floor", 1), (-5, -2, "floor", -2), (7, 1, "nearest", 14),
])
def test_single_neuron_sees_the_rounded_sum(weight: int, weight_exp: int, rounding: str, a: int) -> None:
    fx_net = neuron(weight, rounding, weight_exp=weight_exp)
    layer = fx_net.layers[0]
    assert synapse_step_int(np.array([[1]]), synapse_params(layer, 1)).tolist() == [[a]]
    result = run_all(fx_net, np.array([1, 0, 0]).reshape(3, 1, 1))
    assert result.u[0][:, 0, 0].tolist() == [0, a * ONE, 0]  # du = 4095: u = a << 6, one step late (§4.8)


def test_nearest_removes_the_floor_bias_of_an_integrator() -> None:
    """An IF neuron (dv = 0) fed 1 through weight 1 >> 1 every step: floor loses all of it, nearest keeps
    1/2 rounded up to 1 per step (§4.7's why)."""
    inputs = np.ones((10, 1, 1), np.int64)
    floor = run_all(neuron(1, "floor", weight_exp=-1, dv=0, spiking=False), inputs)
    nearest = run_all(neuron(1, "nearest", weight_exp=-1, dv=0, spiking=False), inputs)
    assert floor.output[-1, 0, 0] == 0 and nearest.output[-1, 0, 0] == 9 * ONE


def test_v_saturation_is_counted_per_step() -> None:
    # a = 128 * 128 << 2 = 2**16 from step 1 on: v = 2**22, then 2**23 and 3 * 2**22 are clipped (§3.3)
    fx_net = neuron(128, "floor", weight_exp=2, dv=0, spiking=False)
    result = run_all(fx_net, np.full((4, 1, 1), 128))
    assert result.v[0][:, 0, 0].tolist() == [0, SPEC.u_max // 2, SPEC.v_max, SPEC.v_max]
    assert counts(result) == (2, 0, 3)  # v clipped twice; |a| = 2**16 > 2**15 - 1 at steps 1, 2, 3
    negative = run_all(neuron(-128, "floor", weight_exp=2, dv=0, spiking=False), np.full((4, 1, 1), 128))
    assert negative.v[0][-1, 0, 0] == SPEC.v_min and counts(negative) == (2, 0, 3)


def test_u_wrap_is_counted_and_2_pow_23_is_no_wrap_but_minus_2_pow_23_is() -> None:
    # a = 128 * 128 << 3 = 2**17: u = 2**23 stays (§3.2); 129 and 255 wrap
    result = run_all(neuron(128, "floor", weight_exp=3, dv=SPEC.decay_max, spiking=False),
                     np.array([128, 129, SPEC.input_max, 0, 0]).reshape(5, 1, 1))
    assert result.u[0][1, 0, 0] == SPEC.u_max
    assert counts(result)[1:] == (2, 3)
    # -2**23 wraps to +2**23: counted
    result = run_all(neuron(-128, "floor", weight_exp=3, dv=SPEC.decay_max, spiking=False),
                     np.array([128, 0, 0]).reshape(3, 1, 1))
    assert result.u[0][1, 0, 0] == SPEC.u_max and counts(result)[1] == 1


@pytest.mark.parametrize(("weight", "weight_exp", "x", "counted"), [
    (217, 0, 151, False), (128, 1, 128, True), (-217, 0, 151, False), (-128, 1, 128, True)])
def test_activation_count_starts_above_2_pow_15_minus_1(weight, weight_exp, x, counted) -> None:
    # 217 * 151 = 32767 = 2**15 - 1 (in Lava's range, §8); 128 * 128 << 1 = 32768 (outside)
    assert abs(weight * x << weight_exp) == SPEC.activation_max + counted
    result = run_all(neuron(weight, "floor", weight_exp=weight_exp, dv=SPEC.decay_max, spiking=False),
                     np.array([x, x, 0]).reshape(3, 1, 1))
    assert counts(result)[2] == 2 * counted


def _loud(fx_net: FixedPointNetwork, data: st.DataObject) -> FixedPointNetwork:
    """Layer 0 at the largest exponent, with leak choices that make u wrap and v saturate."""
    first = fx_net.layers[0]
    loud = replace_layer(first, weight_exp=SPEC.weight_exp_max, du=data.draw(st.sampled_from([0, SPEC.decay_max])),
                         dv=data.draw(st.sampled_from([0, SPEC.decay_max])))
    return FixedPointNetwork(fx_net.profile, fx_net.input_shape, (loud, *fx_net.layers[1:]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_loud_networks_agree_on_the_counts(data: st.DataObject) -> None:
    fx_net = _loud(data.draw(networks(profile="bso")), data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "CHUNK_ROWS", data.draw(st.sampled_from([1, 3, 4096])))
        run_all(fx_net, np.full((6, 2, *fx_net.input_shape), SPEC.input_max, dtype=np.int64))


def _random_dense(seed: int, rounding: str) -> FixedPointNetwork:
    """Dense 6-5-4-3 with layer 0 driven far past every bound: its u wraps (du = 0), its |a| exceeds 2**15 - 1
    and the no-leak readout saturates."""
    rng = np.random.default_rng(seed)
    sizes = (6, 5, 4, 3)
    layers = []
    for index in range(3):
        binary = index == 1
        weight = rng.choice([-1, 1], size=(sizes[index + 1], sizes[index])) if binary else rng.integers(
            -256, 256, size=(sizes[index + 1], sizes[index]))
        loud = index == 0
        weight = np.abs(weight) if index == 2 else weight  # an excitatory readout: it runs into the clip
        layers.append(FixedPointLayer(
            name=f"l{index}", kind="dense", input_shape=(sizes[index],), weight=weight, binary=binary,
            weight_mant=int(rng.integers(100, 128)) if binary else 1,
            weight_exp=SPEC.weight_exp_max if loud or index == 2 else -int(rng.integers(1, 4)),
            du=0 if loud else int(rng.integers(0, 4096)), dv=0 if index == 2 else int(rng.integers(0, 4096)),
            vth=rng.integers(0, 3000 if loud else 60, size=sizes[index + 1]),
            bias_mant=rng.integers(-300, 300, size=sizes[index + 1]),
            bias_exp=rng.integers(-3, 4, size=sizes[index + 1]), reset=str(rng.choice(["zero", "subtract"])),
            spiking=index < 2, shift_rounding=rounding))
    return FixedPointNetwork("bso", (sizes[0],), tuple(layers))


@pytest.mark.parametrize("rounding", ["floor", "nearest"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constructed_networks_count_every_event(seed: int, rounding: str) -> None:
    fx_net = _random_dense(seed, rounding)
    rng = np.random.default_rng(100 + seed)
    inputs = rng.integers(0, SPEC.input_max + 1, size=(12, 3, 6))
    result = run_all(fx_net, inputs)
    first, _, readout = (saturation.totals() for saturation in result.saturation)
    assert first["u_steps"] > 0 and first["a_steps"] > 0 and readout["v_steps"] > 0, (first, readout)
    assert all(s.v.shape == (3, *layer.output_shape) for s, layer in zip(result.saturation, fx_net.layers))
    assert result.spikes[0].any() and result.spikes[1].any()


def test_quiet_network_counts_zeros_without_per_step_work() -> None:
    """A compiled-size layer cannot saturate: the plan skips all counting and the counts are zero."""
    layer = FixedPointLayer(name="q", kind="dense", input_shape=(4,), weight=np.full((3, 4), 2), weight_exp=-2,
                            du=SPEC.decay_max, dv=SPEC.decay_unity // 2, vth=5, shift_rounding="nearest")
    fx_net = FixedPointNetwork("bso", (4,), (layer,))
    plan = fused.fused_layer(layer, synapse_params(layer, SPEC.input_max), SPEC.input_max, 8, SPEC)
    assert plan.nearest and not (plan.wrap or plan.saturate or plan.count_a)
    inputs = np.random.default_rng(0).integers(0, SPEC.input_max + 1, size=(8, 2, 4))
    result = run_all(fx_net, inputs)
    assert not any(np.any(count) for count in result.saturation[0])
    assert simulate_stepwise(fx_net, inputs).saturation[0].totals()["a_steps"] == 0
