"""Tests for hardware/fused.py: the fused path of ``simulate`` equals the step functions (``simulate_stepwise``)
exactly on random networks, at the wrap and saturation edges, in every chunking; its plans pick float32, float64
or the step loop."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware import fused
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.simulator import simulate, synapse_params
from bso_deploy.hardware.spec import SPEC
from fixed_point_strategies import inputs_for, networks, replace_layer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_simulator import HALF, assert_same_run


def plans(fx_net: FixedPointNetwork, steps: int) -> list:
    bounds = [SPEC.input_max] + [1] * (len(fx_net.layers) - 1)
    return [fused.fused_layer(layer, synapse_params(layer, bound), bound, steps, SPEC)
            for layer, bound in zip(fx_net.layers, bounds)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fused_path_equals_step_functions(data: st.DataObject) -> None:
    """Random networks of both profiles (conv, pooling, every synapse kind, decays 0 and 4095, negative
    exponents, bias delays; tests/hardware/fixed_point_strategies.py), split into chunks of 1 step up to all
    and into blocks of 1 sample up to the whole batch."""
    fx_net = data.draw(networks())
    inputs = data.draw(inputs_for(fx_net))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "CHUNK_ROWS", data.draw(st.sampled_from([1, 2, 5, 512])))
        patch.setattr(fused, "BLOCK_NEURONS", data.draw(st.sampled_from([1, 40, 300, fused.BLOCK_NEURONS])))
        assert_same_run(fx_net, inputs)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fused_path_at_the_wrap_and_saturation_edges(data: st.DataObject) -> None:
    """Always-maximal input through the largest exponent: u wraps and v saturates in nearly every example."""
    fx_net = data.draw(networks())
    first = fx_net.layers[0]
    loud = replace_layer(first, weight_exp=SPEC.weight_exp_max, du=data.draw(st.sampled_from([0, SPEC.decay_max])),
                         dv=data.draw(st.sampled_from([0, SPEC.decay_max])))
    fx_net = FixedPointNetwork(fx_net.profile, fx_net.input_shape, (loud, *fx_net.layers[1:]))
    assert_same_run(fx_net, np.full((6, 2, *fx_net.input_shape), SPEC.input_max, dtype=np.int64))


def _dense(weight: np.ndarray, **kwargs) -> FixedPointNetwork:
    layer = FixedPointLayer(name="d", kind="dense", input_shape=(weight.shape[1],), weight=weight, **kwargs)
    return FixedPointNetwork("bso", (weight.shape[1],), (layer,))


def test_fused_plans_pick_float32_float64_or_the_step_loop() -> None:
    """The bounds choose the arithmetic: float32 for a compiled-size layer, float64 with the wrap and the
    clip where u and v can reach them (the step loop where not even float64 is exact: next test)."""
    quiet = _dense(np.full((3, 4), 2), weight_exp=-2, du=SPEC.decay_max, dv=SPEC.decay_unity // 2, vth=5)
    (plan,) = plans(quiet, steps=8)
    assert plan.dtype is np.float32 and not plan.wrap and not plan.saturate and plan.floor
    loud = _dense(np.full((2, 9), SPEC.weight_max), weight_exp=SPEC.weight_exp_max, du=0, dv=0)
    (plan,) = plans(loud, steps=8)
    assert plan.dtype is np.float64 and plan.wrap and plan.saturate
    inputs = np.full((8, 2, 9), SPEC.input_max)
    result = simulate(loud, inputs, record=True)
    assert (result.u[0] < 0).any() and (np.abs(result.v[0]) == SPEC.v_max).any()  # both edges are reached
    assert_same_run(loud, inputs, result)
    # a readout without leak saturates only after enough steps: the bound grows with T (dv = 0, §3.7)
    readout = _dense(np.full((1, 4), 100), weight_exp=-3, du=SPEC.decay_max, dv=0, spiking=False)
    assert not plans(readout, steps=4)[0].saturate and plans(readout, steps=400)[0].saturate
    assert_same_run(readout, np.full((400, 1, 4), SPEC.input_max))


def test_layers_beyond_float64_run_the_step_loop() -> None:
    """A layer whose a << 6 could reach 2**53 (some 2**24 inputs at full weight and exponent: too large to
    build here) gets no fused plan, and simulate then runs the step functions."""
    net = _dense(np.full((2, 3), 7), weight_exp=-1, du=5, dv=9, vth=3)
    inputs = np.random.default_rng(2).integers(0, SPEC.input_max + 1, size=(5, 2, 3))

    def unreachable(*args):
        raise AssertionError("the fused path ran")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "fused_layer", lambda *args: None)
        patch.setattr(fused, "_drive_chunk", unreachable)
        assert_same_run(net, inputs)


@pytest.mark.parametrize("chunk_rows", [1, 4, 9, 4096])
def test_repeated_and_silent_input_steps(chunk_rows: int) -> None:
    """Layer 0 computes the sum of a run of equal input steps once and skips trailing silent steps: runs of
    frames, a silent step inside the run and zero flush steps give exactly the step functions' result."""
    rng = np.random.default_rng(4)
    frames = rng.integers(0, SPEC.input_max + 1, size=(3, 2, 5))
    silent = np.zeros((1, 2, 5), np.int64)
    inputs = np.concatenate([frames[[0, 0, 1, 1, 1]], silent, frames[[0, 0, 2]], silent, silent])
    layers = (FixedPointLayer(name="a", kind="dense", input_shape=(5,), weight=rng.integers(-90, 91, size=(4, 5)),
                              weight_exp=-5, du=SPEC.decay_max, dv=HALF, vth=rng.integers(0, 40, size=4),
                              reset="subtract"),
              FixedPointLayer(name="b", kind="dense", input_shape=(4,), weight=rng.choice([-1, 1], size=(3, 4)),
                              binary=True, weight_mant=20, du=7, dv=0, spiking=False))
    net = FixedPointNetwork("bso", (5,), layers)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "CHUNK_ROWS", chunk_rows)
        result = simulate(net, inputs, record=True)
    assert result.spikes[0].any()
    assert_same_run(net, inputs, result)


def conv_network(rng: np.random.Generator, stride: int, kernel: tuple[int, int]) -> FixedPointNetwork:
    """32C3-P2-64C3-P2-FC in miniature (profile bso): an 8-bit conv, a binary conv after a sum pool, a pooled
    dense readout."""
    first = FixedPointLayer(name="c1", kind="conv", input_shape=(1, 12, 12),
                            weight=2 * rng.integers(-60, 61, size=(4, 1, 3, 3)), padding=(1, 1), weight_exp=-6,
                            du=SPEC.decay_max, dv=HALF, vth=rng.integers(1, 40, size=(4, 12, 12)), reset="subtract")
    second = FixedPointLayer(name="c2", kind="conv", input_shape=(4, 12, 12), pool=(2, 2), stride=(stride, stride),
                             padding=(1, 0), weight=rng.choice(SPEC.binary_weight_values, size=(5, 4, *kernel)),
                             binary=True, weight_mant=7, weight_exp=-1, du=SPEC.decay_max, dv=HALF,
                             vth=rng.integers(1, 12, size=(5, 1, 1)),
                             bias_mant=rng.integers(-3, 4), reset="subtract")
    shape = second.output_shape
    pool = (2, 2) if shape[1] % 2 == 0 and shape[2] % 2 == 0 else (1, 1)
    pooled = (shape[0], shape[1] // pool[0], shape[2] // pool[1])
    readout = FixedPointLayer(name="fc", kind="dense", input_shape=shape, pool=pool,
                              weight=2 * rng.integers(-90, 91, size=(3, int(np.prod(pooled)))), weight_exp=-2,
                              du=SPEC.decay_max, dv=0, spiking=False)
    return FixedPointNetwork("bso", (1, 12, 12), (first, second, readout))


@pytest.mark.parametrize(("block_neurons", "block"), [(1, 1), (1800, 3), (fused.BLOCK_NEURONS, 7)])
@pytest.mark.parametrize(("stride", "kernel"), [(1, (3, 3)), (2, (3, 2)), (1, (1, 1))])
def test_conv_network_in_blocks_equals_step_functions(block_neurons: int, block: int, stride: int,
                                                     kernel: tuple[int, int]) -> None:
    """A conv net of the deployed shape (issue 13): im2col in the zero border of the padding, sum pools as
    strided additions, blocks of 1, a few and all samples: spikes, u, v, output and counts equal the step
    functions'; the layers are active (spikes in both convs)."""
    rng = np.random.default_rng(stride * 10 + kernel[1])
    fx_net = conv_network(rng, stride, kernel)
    frames = rng.integers(0, SPEC.input_max + 1, size=(1, 7, 1, 12, 12))
    inputs = np.concatenate([np.repeat(frames[0][None], 5, axis=0), np.zeros((3, 7, 1, 12, 12), np.int64)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "BLOCK_NEURONS", block_neurons)
        result = simulate(fx_net, inputs, record=True)
        assert fused.block_samples(fx_net, 7) == block  # 576 neurons in c1: blocks of 3, 3 and 1 samples
    assert result.spikes[0].any() and result.spikes[1].any()
    assert_same_run(fx_net, inputs, result)
