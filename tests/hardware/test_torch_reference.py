"""The torch integer reference equals the NumPy simulator exactly: spikes, u, v of every layer at every step.

Hypothesis draws random networks and inputs from tests/hardware/fixed_point_strategies.py (both profiles,
dense and conv, pooling, every synapse kind, parameters pulled toward the edges of docs/fixed-point.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bso_deploy.hardware import torch_reference
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from bso_deploy.hardware.torch_reference import TorchReference, default_device
from fixed_point_strategies import inputs_for, networks, replace_layer, weights_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fused import conv_network
from test_simulator import assert_same_saturation

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(fx_net: FixedPointNetwork, inputs: np.ndarray, device: str | None = "cpu") -> None:
    expected = simulate(fx_net, inputs, record=True)
    actual = TorchReference(fx_net, device=device).run(inputs, record=True)
    for index, layer in enumerate(fx_net.layers):
        for name in ("spikes", "u", "v"):
            ours, theirs = getattr(expected, name)[index], getattr(actual, name)[index]
            assert theirs.dtype == ours.dtype, f"{layer.name} {name}: {theirs.dtype} != {ours.dtype}"
            np.testing.assert_array_equal(theirs, ours, err_msg=f"{layer.name}: {name}")
    np.testing.assert_array_equal(actual.output, expected.output)
    assert actual.output.dtype == expected.output.dtype
    assert_same_saturation(expected, actual, fx_net)


@SETTINGS
@given(data=st.data())
def test_torch_reference_equals_simulator(data: st.DataObject) -> None:
    """Random networks (recurrent layers included), run in blocks of 1 sample up to the whole batch."""
    fx_net = data.draw(networks())
    inputs = data.draw(inputs_for(fx_net))
    with pytest.MonkeyPatch.context() as patch:
        neurons = data.draw(st.sampled_from([1, 40, torch_reference.BLOCK_NEURONS["cpu"]]))
        patch.setattr(torch_reference, "BLOCK_NEURONS", {"cpu": neurons, "cuda": neurons})
        assert_same(fx_net, inputs)


@pytest.mark.parametrize(("block_neurons", "kernel"), [(1, (3, 3)), (1800, (3, 2)), (1 << 18, (1, 1))])
def test_conv_network_in_blocks(block_neurons: int, kernel: tuple[int, int]) -> None:
    """The deployed conv shape in miniature (issue 13), in blocks of 1, 3 and all 7 samples, layer by layer."""
    fx_net = conv_network(np.random.default_rng(kernel[1]), 1, kernel)
    frames = np.random.default_rng(5).integers(0, SPEC.input_max + 1, size=(1, 7, 1, 12, 12))
    inputs = append_zero_steps(np.repeat(frames, 5, axis=0), fx_net.latency)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch_reference, "BLOCK_NEURONS", {"cpu": block_neurons, "cuda": block_neurons})
        assert_same(fx_net, inputs)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_states_reach_the_wrap_and_saturation_edges(data: st.DataObject) -> None:
    """Always-maximal input through large weights: u wraps and v saturates in nearly every example."""
    fx_net = data.draw(networks(profile="loihi"))
    first = fx_net.layers[0]
    loud = replace_layer(first, weight_exp=SPEC.weight_exp_max, du=data.draw(st.sampled_from([0, SPEC.decay_max])),
                    dv=data.draw(st.sampled_from([0, SPEC.decay_max])))
    fx_net = FixedPointNetwork(fx_net.profile, fx_net.input_shape, (loud, *fx_net.layers[1:]))
    assert_same(fx_net, np.full((6, 2, *fx_net.input_shape), SPEC.input_max, dtype=np.int64))


def test_edges_are_actually_reached() -> None:
    """Loud inputs of the kind the strategy above draws do wrap u and saturate v."""
    def loud(weight_exp: int, du: int) -> FixedPointNetwork:
        layer = FixedPointLayer(name="x", kind="dense", input_shape=(3,), weight=np.full((1, 3), SPEC.weight_max),
                                weight_exp=weight_exp, du=du, dv=0, spiking=False)
        return FixedPointNetwork("loihi", (3,), (layer,))

    inputs = np.full((8, 1, 3), SPEC.input_max)
    wrapping, saturating = loud(SPEC.weight_exp_max, 0), loud(-3, SPEC.decay_max)
    assert (TorchReference(wrapping, device="cpu").run(inputs, record=True).u[0] < 0).any()  # wrapped
    assert (TorchReference(saturating, device="cpu").run(inputs, record=True).v[0] == SPEC.v_max).any()
    assert_same(wrapping, inputs)
    assert_same(saturating, inputs)


def test_digits_sized_network_with_batch() -> None:
    rng = np.random.default_rng(5)
    sizes, layers = (64, 256, 256, 10), []
    for index in range(3):
        binary = index > 0
        weight = weights_for(rng, (sizes[index + 1], sizes[index]), binary, "mixed")
        layers.append(FixedPointLayer(name=f"l{index}", kind="dense", input_shape=(sizes[index],), weight=weight,
                                      binary=binary, weight_mant=11 if binary else 1, weight_exp=-5,
                                      du=SPEC.decay_max, dv=SPEC.decay_unity // 2,
                                      vth=rng.integers(1, 80, size=sizes[index + 1]),
                                      bias_mant=rng.integers(-40, 40, size=sizes[index + 1]), reset="subtract",
                                      bias_delay=index + 1, spiking=index < 2))
    net = FixedPointNetwork("bso", (64,), tuple(layers))
    assert_same(net, append_zero_steps(rng.integers(0, SPEC.input_max + 1, size=(8, 32, 64)), net.latency))


def test_default_device_and_input_checks() -> None:
    layer = FixedPointLayer(name="x", kind="dense", input_shape=(2,), weight=np.ones((1, 2), int))
    net = FixedPointNetwork("bso", (2,), (layer,))
    reference = TorchReference(net)
    assert reference.device == default_device()
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="must be integers"):
        reference.run(np.zeros((2, 1, 2)))
    with pytest.raises(ValueError, match=r"shape \(T, batch"):
        reference.run(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match=rf"\[0, {SPEC.input_max}\]"):
        reference.run(np.full((2, 1, 2), SPEC.input_max + 1))
    result = reference.run(torch.ones((3, 1, 2), dtype=torch.int64))
    assert result.u == () and isinstance(result.spikes[0], np.ndarray)


def test_bias_delay_trace_by_hand() -> None:
    """The torch reference's own hand-derived trace (as tests/hardware/test_simulator.py has for the
    simulator): bias 40 from step 2, du = 4095, dv = 2048, vth << 6 = 64, input of step 0 at step 1."""
    layer = FixedPointLayer(name="n", kind="dense", input_shape=(1,), weight=np.array([[1]]), du=SPEC.decay_max,
                            dv=SPEC.decay_unity // 2, vth=1, bias_mant=40, bias_delay=2)
    result = TorchReference(FixedPointNetwork("bso", (1,), (layer,)), device="cpu").run(
        np.array([1, 0, 0, 0, 0]).reshape(5, 1, 1), record=True)
    # v: 0; 64 (no bias yet, 64 does not fire); 32 + 40 = 72 fires -> 0; 40; 20 + 40 = 60
    assert result.v[0][:, 0, 0].tolist() == [0, 64, 0, 40, 60]
    assert result.spikes[0][:, 0, 0].tolist() == [0, 0, 1, 0, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@SETTINGS
@given(data=st.data())
def test_cuda_reference_equals_simulator(data: st.DataObject) -> None:
    fx_net = data.draw(networks())
    assert_same(fx_net, data.draw(inputs_for(fx_net)), device="cuda")
