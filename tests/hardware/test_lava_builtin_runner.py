"""`LavaBuiltinRunner` (one compiled Lava network, many samples) and `run_lava_per_sample` == `simulate`."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from conftest import require_lava


def _network(seed: int, readout_spiking: bool) -> FixedPointNetwork:
    """Three dense layers (full precision, binary, readout) kept well inside Lava's exact domain."""
    rng = np.random.default_rng(seed)
    hidden = FixedPointLayer("hidden", "dense", (6,), weight=rng.integers(-256, 256, size=(12, 6)), weight_exp=-3,
                             du=SPEC.decay_max, dv=SPEC.decay_unity // 2, vth=20,
                             bias_mant=rng.integers(-40, 40, size=12), bias_exp=rng.integers(-2, 3, size=12))
    binary = FixedPointLayer("binary", "dense", (12,), weight=rng.choice(SPEC.binary_weight_values, size=(8, 12)),
                             binary=True, weight_mant=37, weight_exp=-3, du=100, dv=SPEC.decay_unity // 2, vth=15,
                             bias_mant=rng.integers(-9, 9, size=8))
    readout = FixedPointLayer("readout", "dense", (8,), weight=rng.integers(-60, 60, size=(4, 8)), weight_exp=-1,
                              du=SPEC.decay_max, dv=0 if not readout_spiking else 1000,
                              vth=10 if readout_spiking else 0, bias_mant=rng.integers(-9, 9, size=4),
                              spiking=readout_spiking)
    return FixedPointNetwork("loihi", (6,), (hidden, binary, readout))


def _inputs(seed: int, fx_net: FixedPointNetwork, samples: int) -> np.ndarray:
    rng = np.random.default_rng(100 + seed)
    x = rng.integers(0, SPEC.input_max + 1, size=(10, samples, 6)) * (rng.random((10, samples, 6)) < 0.7)
    return append_zero_steps(x, fx_net.latency)


def _assert_equal(fx_net: FixedPointNetwork, inputs: np.ndarray, result) -> None:
    for b in range(inputs.shape[1]):  # simulate one sample at a time: each starts from the initial state
        expected = simulate(fx_net, inputs[:, b:b + 1])
        for layer, ours, theirs in zip(fx_net.layers, expected.spikes, result.spikes):
            np.testing.assert_array_equal(theirs[:, b], ours[:, 0], err_msg=f"sample {b}, {layer.name}")
        np.testing.assert_array_equal(result.output[:, b], expected.output[:, 0], err_msg=f"sample {b}, output")


@pytest.mark.parametrize("readout_spiking", [False, True])
def test_streamed_samples_match_simulate(readout_spiking: bool) -> None:
    require_lava()
    from bso_deploy.hardware.lava.builtin import LavaBuiltinRunner

    fx_net = _network(0, readout_spiking)
    inputs = _inputs(0, fx_net, samples=3)
    with LavaBuiltinRunner(fx_net, inputs.shape[0]) as runner:
        result = runner.run(inputs)
    _assert_equal(fx_net, inputs, result)
    assert result.spikes[0].any() and result.spikes[1].any()  # not trivially silent
    assert not np.array_equal(result.spikes[0][:, 0], result.spikes[0][:, 1])  # the samples differ
    if not readout_spiking:
        assert result.output.any()


def test_fresh_run_per_sample_matches_simulate() -> None:
    require_lava()
    from bso_deploy.hardware.lava.builtin import run_lava_per_sample

    fx_net = _network(1, readout_spiking=False)
    inputs = _inputs(1, fx_net, samples=3)
    _assert_equal(fx_net, inputs, run_lava_per_sample(fx_net, inputs))


def test_runner_rejects_other_profiles_and_stops_on_error() -> None:
    require_lava()
    from bso_deploy.hardware.lava.builtin import LavaBuiltinRunner

    fx_net = _network(2, readout_spiking=False)
    with pytest.raises(ValueError, match="profile 'loihi'"):
        LavaBuiltinRunner(FixedPointNetwork("bso", fx_net.input_shape, fx_net.layers), 5)
    runner = LavaBuiltinRunner(fx_net, 5)
    with pytest.raises(ValueError, match="shape"), runner:
        runner.run_sample(np.zeros((4, 6), dtype=np.int64))
    assert not runner._started
