"""Profile ``loihi`` ties the spec to reality: `simulate` == Lava's built-in fixed_pt Dense + LIF, bit for bit.

Each case builds a small FixedPointNetwork (1-2 dense layers), runs it under Lava's real runtime
(`Loihi2SimCfg(select_tag="fixed_pt")`, RingBuffer input, Monitors on u and v, sink RingBuffers for the
spikes) and compares spikes, u and v of every layer at every step with `simulate(record=True)`. Layer 0
receives graded input (Dense with num_message_bits = input_bits), later layers binary spikes. Binary layers
are given to Lava in their documented form (docs/fixed-point.md §4.6): weights 2 * weight_mant * sign and
weight_exp - 1. The cases stay in the valid domain of docs/fixed-point.md §8 widened to the point where
Lava's single wrap correction is still exact (abs(a) < 2**(state_bits - state_shift + 1)), so u crosses
the wrap boundary.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from conftest import require, require_lava

A_LIMIT = 1 << (SPEC.state_bits - SPEC.state_shift + 1)  # |a << 6| < 2**24: Lava's one correction suffices


def _lava() -> SimpleNamespace:
    require_lava()
    names = {"source": "lava.proc.io.source", "sink": "lava.proc.io.sink", "dense": "lava.proc.dense.process",
             "lif": "lava.proc.lif.process", "monitor": "lava.proc.monitor.process",
             "configs": "lava.magma.core.run_configs", "conditions": "lava.magma.core.run_conditions"}
    return SimpleNamespace(**{key: require(module) for key, module in names.items()})


def run_lava(fx_net: FixedPointNetwork, inputs: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Run batch element 0 of ``inputs`` (T, 1, n_in) through Lava; per layer (T, n) int64 arrays."""
    lava = _lava()
    steps = inputs.shape[0]
    ring = lava.source.RingBuffer(data=inputs[:, 0, :].T.astype(np.int32))
    previous, lifs, sinks, monitors = ring, [], [], []
    for index, layer in enumerate(fx_net.layers):
        if layer.binary:  # docs/fixed-point.md §4.6
            weights, weight_exp = 2 * layer.weight_mant * layer.weight, layer.weight_exp - 1
        else:
            weights, weight_exp = layer.weight, layer.weight_exp
        dense = lava.dense.Dense(weights=np.asarray(weights, dtype=np.int32), weight_exp=int(weight_exp),
                                 num_message_bits=SPEC.input_bits if index == 0 else 0)
        vth = int(layer.vth.flat[0]) if layer.spiking else SPEC.vth_max  # §3.7: readout as vth = max
        lif = lava.lif.LIF(shape=layer.output_shape, du=layer.du, dv=layer.dv, vth=vth,
                           bias_mant=layer.bias_mant.copy(), bias_exp=layer.bias_exp.copy())
        sink = lava.sink.RingBuffer(shape=layer.output_shape, buffer=steps)
        previous.s_out.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        lif.s_out.connect(sink.a_in)
        probes = {name: lava.monitor.Monitor() for name in ("u", "v")}
        for name, monitor in probes.items():
            monitor.probe(getattr(lif, name), steps)
        previous, lifs, sinks, monitors = lif, [*lifs, lif], [*sinks, sink], [*monitors, probes]
    result: dict[str, list[np.ndarray]] = {"spikes": [], "u": [], "v": []}
    try:
        lifs[-1].run(condition=lava.conditions.RunSteps(num_steps=steps),
                     run_cfg=lava.configs.Loihi2SimCfg(select_tag="fixed_pt"))
        for lif, sink, probes in zip(lifs, sinks, monitors):
            result["spikes"].append(np.asarray(sink.data.get()).T.astype(np.int64))
            for name in ("u", "v"):
                result[name].append(np.asarray(probes[name].get_data()[lif.name][name]).astype(np.int64))
    finally:
        lifs[-1].stop()
    return result


def _assert_parity(fx_net: FixedPointNetwork, inputs: np.ndarray) -> SimpleNamespace:
    simulated = simulate(fx_net, inputs, record=True)
    lava = run_lava(fx_net, inputs)
    for index, layer in enumerate(fx_net.layers):
        for name, ours in (("spikes", simulated.spikes), ("u", simulated.u), ("v", simulated.v)):
            np.testing.assert_array_equal(lava[name][index], ours[index][:, 0], err_msg=f"{layer.name}: {name}")
    return SimpleNamespace(sim=simulated, lava=lava)


def _layer(name: str, weight: np.ndarray, **kwargs) -> FixedPointLayer:
    return FixedPointLayer(name=name, kind="dense", input_shape=(weight.shape[1],), weight=weight, **kwargs)


def _pick(rng: np.random.Generator, edges: tuple[int, ...], low: int, high: int) -> int:
    return int(rng.choice(edges)) if rng.random() < 0.4 else int(rng.integers(low, high + 1))


def _random_layer(rng: np.random.Generator, name: str, n_in: int, n_out: int, max_input: int,
                  binary: bool, spiking: bool) -> FixedPointLayer:
    if binary:
        weight = rng.choice(SPEC.binary_weight_values, size=(n_out, n_in))
        weight_mant = int(rng.integers(1, SPEC.weight_mant_max + 1))
        magnitude = weight_mant
    else:
        mode = rng.choice(["mixed", "mixed", "excitatory", "inhibitory"])
        weight = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=(n_out, n_in))  # odd values too
        weight = {"mixed": weight, "excitatory": np.abs(weight) % (SPEC.weight_max + 1),
                  "inhibitory": -np.abs(weight)}[mode]
        weight_mant, magnitude = 1, -SPEC.weight_min
    worst = n_in * magnitude * max_input
    exp_high = min(SPEC.weight_exp_max, math.floor(math.log2((A_LIMIT - 1) / worst)))
    weight_exp = int(rng.integers(SPEC.weight_exp_min, exp_high + 1))
    decay_edges = (0, SPEC.decay_max)
    return _layer(name, weight, binary=binary, weight_mant=weight_mant, weight_exp=weight_exp,
                  du=_pick(rng, decay_edges, 0, SPEC.decay_max), dv=_pick(rng, decay_edges, 0, SPEC.decay_max),
                  vth=_pick(rng, (0, 1, SPEC.vth_max), 0, 400),
                  bias_mant=rng.integers(-300, 301, size=n_out), spiking=spiking,
                  bias_exp=rng.integers(SPEC.bias_exp_min, SPEC.bias_exp_max + 1, size=n_out))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_networks_match_lava(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_layers = 1 + seed % 2
    sizes = [int(rng.integers(3, 13)) for _ in range(n_layers + 1)]
    layers = [_random_layer(rng, f"layer{k}", sizes[k], sizes[k + 1], SPEC.input_max if k == 0 else 1,
                            binary=k > 0 and seed % 4 == 1, spiking=True) for k in range(n_layers)]
    fx_net = FixedPointNetwork("loihi", (sizes[0],), tuple(layers))
    steps = int(rng.integers(12, 25))
    inputs = rng.integers(0, SPEC.input_max + 1, size=(steps, 1, sizes[0])) * (rng.random((steps, 1, sizes[0])) < 0.6)
    result = _assert_parity(fx_net, inputs)
    assert result.sim.u[0].any()  # the run is not trivially silent


def test_edges_match_lava() -> None:
    """Wrap of u at both ends, strict threshold ties, floor of negative shifts, mixed-mode odd weights."""
    shift = SPEC.state_shift
    x_exact = 1 << (SPEC.state_bits - 1 - shift - 7 - 3)  # x * 128 << 3 = 2**17: u = 2**23 exactly
    weight = np.array([[128, -128, 0, 0], [0, 0, 1, -3], [0, 0, -1, 3]])  # mixed: 1 -> 0, -3 -> -4, 3 -> 2
    inputs = np.zeros((10, 1, 4), dtype=np.int64)
    inputs[0, 0, 0] = x_exact          # u = +2**23 stays
    inputs[1, 0, 1] = x_exact          # u = -2**23 wraps to +2**23
    inputs[2, 0, :2] = (x_exact + 1, 0)  # just above: wraps negative
    inputs[3, 0, :2] = (0, x_exact + 1)
    inputs[4, 0, :2] = (SPEC.input_max, 0)  # 255 * 128 << 3 = 261120 < 2**18: the largest a of this layer
    inputs[5, 0, 2:] = (1, 1)
    inputs[6, 0, 2:] = (3, 1)
    first = _layer("wrap", weight, weight_exp=3, du=SPEC.decay_max, dv=SPEC.decay_max, vth=1,
                   bias_mant=np.array([-3, -5, 7]), bias_exp=np.array([-1, -2, -1]))
    second = _layer("tie", np.array([[1, 1, 1]]), du=SPEC.decay_max, dv=SPEC.decay_max, vth=1)
    fx_net = FixedPointNetwork("loihi", (4,), (first, second))
    result = _assert_parity(fx_net, inputs)
    u = result.sim.u[0][:, 0, 0]
    assert SPEC.u_max in u and (u < 0).any()


def test_accumulating_wrap_and_negative_saturation_match_lava() -> None:
    """du = 0: u climbs through +2**23 and wraps; dv = 0 with negative input saturates v at -(2**23 - 1)."""
    weight = np.array([[255, 0], [0, -255]])
    inputs = np.zeros((16, 1, 2), dtype=np.int64)
    inputs[:8, 0, 0] = SPEC.input_max
    inputs[:8, 0, 1] = SPEC.input_max
    layer = _layer("acc", weight, weight_exp=-1, du=0, dv=0, vth=SPEC.vth_max,
                   bias_mant=SPEC.bias_mant_min, bias_exp=SPEC.bias_exp_max)
    result = _assert_parity(FixedPointNetwork("loihi", (2,), (layer,)), inputs)
    assert (np.diff(result.sim.u[0][:, 0, 0]) < 0).any()  # wrapped
    assert (result.sim.v[0][:, 0, 1] == SPEC.v_min).any()  # saturated


def test_binary_layer_and_readout_match_lava() -> None:
    """A binary hidden layer (weights 2 m sign, exponent - 1 in Lava) and a non-spiking readout that stays
    below Lava's highest threshold, so Lava's LIF with vth = max never fires either."""
    rng = np.random.default_rng(7)
    hidden = _layer("hidden", rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=(16, 6)), weight_exp=-3,
                    du=SPEC.decay_max, dv=SPEC.decay_unity // 2, vth=20, bias_mant=rng.integers(-40, 40, size=16))
    binary = _layer("binary", rng.choice(SPEC.binary_weight_values, size=(12, 16)), binary=True, weight_mant=37,
                    weight_exp=-3, du=100, dv=SPEC.decay_unity // 2, vth=15)
    readout = _layer("readout", rng.choice(SPEC.binary_weight_values, size=(4, 12)), binary=True, weight_mant=5,
                     weight_exp=-1, du=SPEC.decay_max, dv=0, bias_mant=rng.integers(-9, 9, size=4), spiking=False)
    fx_net = FixedPointNetwork("loihi", (6,), (hidden, binary, readout))
    inputs = rng.integers(0, SPEC.input_max + 1, size=(20, 1, 6))
    result = _assert_parity(fx_net, inputs)
    assert result.sim.spikes[1].any() and not result.lava["spikes"][2].any()
    np.testing.assert_array_equal(result.sim.output[:, 0], result.lava["v"][2])
