"""hardware/lava/deploy.py: ``deploy(...)`` -> ``LavaNetwork`` == ``simulate`` exactly, in both profiles.

Each random network is compiled once and streams a batch of samples back to back (one Lava run); every
sample must equal the simulator's (spikes, u, v of every layer at every step, output). Profile bso covers
dense and conv + sum pooling + flatten, binary and full-precision (odd, mixed-sign) layers, zero and
subtractive reset, bias_delay, negative weight and bias exponents, spiking and non-spiking readouts; profile
loihi runs Lava's own Dense + LIF. Then: the float network under floating_pt against the NIR importer's
float module, the context manager's cleanup after an exception, and argument errors.
"""

from __future__ import annotations

import multiprocessing
import warnings

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from conftest import require
from test_lava_builtin_parity import _random_layer as random_loihi_layer
from test_rounding_and_saturation import _random_dense as saturating_network
from test_simulator import assert_same_saturation


@pytest.fixture(scope="module")
def lava_deploy(nir_io):
    from conftest import require_lava

    require_lava()
    return require("bso_deploy.hardware.lava.deploy")


def _pick(rng: np.random.Generator, edges: tuple[int, ...], low: int, high: int) -> int:
    return int(rng.choice(edges)) if rng.random() < 0.3 else int(rng.integers(low, high + 1))


def _neuron_kwargs(rng: np.random.Generator, shape: tuple[int, ...], index: int, spiking: bool,
                   weights: dict, input_mean: float) -> dict:
    """Thresholds around the typical synaptic input (so that layers neither stay silent nor always fire)."""
    weight = np.abs(weights["weight"]) * weights.get("weight_mant", 1)
    typical = weight.mean() * weight[0].size * input_mean * 2.0 ** weights["weight_exp"]
    return dict(du=_pick(rng, (0, SPEC.decay_max), 0, SPEC.decay_max),
                dv=_pick(rng, (0, SPEC.decay_max, SPEC.decay_unity // 2), 0, SPEC.decay_max),
                vth=rng.integers(0, min(SPEC.vth_max, int(3 * typical) + 2), size=shape),
                bias_mant=rng.integers(-400, 400, size=shape),
                bias_exp=rng.integers(-4, 3, size=shape), bias_delay=int(rng.integers(0, index + 3)),
                reset=str(rng.choice(["zero", "subtract"])), spiking=spiking)


def _weights(rng: np.random.Generator, shape: tuple[int, ...], binary: bool) -> dict:
    if binary:
        return dict(weight=rng.choice(SPEC.binary_weight_values, size=shape), binary=True,
                    weight_mant=int(rng.integers(1, SPEC.weight_mant_max + 1)), weight_exp=int(rng.integers(-6, 1)))
    weight = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=shape)
    if rng.random() < 0.3:  # excitatory sign mode (§4.5)
        weight = np.abs(weight) % (SPEC.weight_max + 1)
    return dict(weight=weight, weight_exp=int(rng.integers(-7, 0)))


def random_dense_network(seed: int) -> FixedPointNetwork:
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(4, 14)) for _ in range(4)]
    layers = []
    for index in range(3):
        last = index == 2
        spiking = not last or bool(rng.random() < 0.4)
        weights = _weights(rng, (sizes[index + 1], sizes[index]), index > 0 or seed % 2 == 1)
        neuron = _neuron_kwargs(rng, (sizes[index + 1],), index, spiking, weights, 64.0 if index == 0 else 0.3)
        layers.append(FixedPointLayer(f"layer{index}", "dense", (sizes[index],), **weights, **neuron,
                                      shift_rounding=("floor", "nearest")[(seed + index) % 2]))
    return FixedPointNetwork("bso", (sizes[0],), tuple(layers))


def random_conv_network(seed: int) -> FixedPointNetwork:
    """conv (padding 1) -> sum pool 2x2 + binary conv (stride 2) -> sum pool + flatten + dense readout."""
    rng = np.random.default_rng(seed)
    weights = [_weights(rng, (3, 2, 3, 3), False), _weights(rng, (4, 3, 2, 2), True), _weights(rng, (5, 4), True)]
    conv0 = FixedPointLayer("conv0", "conv", (2, 8, 8), padding=(1, 1), **weights[0],
                            **_neuron_kwargs(rng, (3, 8, 8), 0, True, weights[0], 64.0))
    conv1 = FixedPointLayer("conv1", "conv", (3, 8, 8), pool=(2, 2), stride=(2, 2), **weights[1],
                            **_neuron_kwargs(rng, (4, 2, 2), 1, True, weights[1], 4 * 0.3))
    readout = FixedPointLayer("readout", "dense", (4, 2, 2), pool=(2, 2), **weights[2],
                              **_neuron_kwargs(rng, (5,), 2, False, weights[2], 4 * 0.3))
    return FixedPointNetwork("bso", (2, 8, 8), (conv0, conv1, readout))


def random_loihi_network(seed: int) -> FixedPointNetwork:
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(3, 10)) for _ in range(3)]
    layers = [random_loihi_layer(rng, f"layer{k}", sizes[k], sizes[k + 1], SPEC.input_max if k == 0 else 1,
                                 binary=k == 1, spiking=True) for k in range(2)]
    return FixedPointNetwork("loihi", (sizes[0],), tuple(layers))


def random_inputs(seed: int, fx_net: FixedPointNetwork, steps: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    shape = (steps, batch, *fx_net.input_shape)
    x = rng.integers(0, SPEC.input_max + 1, size=shape) * (rng.random(shape) < 0.5)
    if fx_net.layers[0].input_shape != (1,) and rng.random() < 0.5:
        x = np.minimum(x, 1)  # spikes as a special case of graded input
    return append_zero_steps(x, fx_net.latency)


def assert_same_as_simulate(fx_net: FixedPointNetwork, inputs: np.ndarray, result) -> None:
    expected = simulate(fx_net, inputs, record=True)
    for index, layer in enumerate(fx_net.layers):
        for name in ("spikes", "u", "v"):
            np.testing.assert_array_equal(getattr(result, name)[index], getattr(expected, name)[index],
                                          err_msg=f"{layer.name}: {name}")
    np.testing.assert_array_equal(result.output, expected.output)
    assert result.output.dtype == np.int64 and result.spikes[0].dtype == np.int8
    if fx_net.profile == "loihi":  # Lava's LIF counts nothing, and the result does not pretend it does (§5.6)
        assert result.saturation == ()
    else:
        assert_same_saturation(expected, result, fx_net)


@pytest.mark.parametrize("kind,seed,copies", [("dense", 0, 1), ("dense", 1, 7), ("dense", 2, 1), ("conv", 3, 4)])
def test_profile_bso_streams_many_samples_exactly(lava_deploy, monkeypatch, kind: str, seed: int,
                                                  copies: int) -> None:
    """One compiled network streams the batch (copies > 1: side by side copies, each streaming its share; 30
    samples over 7 copies pad the last group)."""
    fx_net = random_dense_network(seed) if kind == "dense" else random_conv_network(seed)
    steps = int(np.random.default_rng(seed).integers(4, 9))
    inputs = random_inputs(seed, fx_net, steps=steps, batch=30 if kind == "dense" else 12)
    chunked = seed == 2  # a batch longer than the channel buffers runs as several Lava runs of whole samples
    if chunked:
        widest = max(3 * layer.num_neurons for layer in fx_net.layers) * 8
        monkeypatch.setattr(require("bso_deploy.hardware.lava.stream"), "CHANNEL_BYTES", widest * inputs.shape[0] * 7)
    with lava_deploy.deploy(fx_net, copies=copies) as network:
        result = network.run(inputs, record=True)
        again = network.run(inputs[:, :3])  # reused, not recompiled; restarts at every sample
        assert network.compile_seconds > 0
        if seed == 0:
            _check_bad_inputs(network, inputs)
        assert (network._engine.chunk_groups == 7) == chunked
    assert_same_as_simulate(fx_net, inputs, result)
    np.testing.assert_array_equal(again.output, result.output[:, :3])
    assert again.u == () and again.v == ()
    assert any(spikes.any() for spikes in result.spikes[:2])  # not trivially silent
    distinct = {np.concatenate([s[:, b].ravel() for s in result.spikes]).tobytes() for b in range(inputs.shape[1])}
    assert len(distinct) > 1  # the samples differ


@pytest.mark.parametrize("copies", [1, 3])
def test_profile_bso_counts_saturation_per_sample(lava_deploy, copies: int) -> None:
    """A network whose u wraps, whose |a| exceeds 2**15 - 1 and whose readout saturates (§5.6): Lava's counts
    equal the simulator's sample by sample, though every sample restarts them."""
    fx_net = saturating_network(1, "nearest")
    inputs = np.random.default_rng(5).integers(0, SPEC.input_max + 1, size=(9, 5, 6))
    with lava_deploy.deploy(fx_net, copies=copies) as network:
        result = network.run(inputs, record=True)
    assert_same_as_simulate(fx_net, inputs, result)
    first, _, readout = (saturation.totals() for saturation in result.saturation)
    assert first["u_steps"] > 0 and first["a_steps"] > 0 and readout["v_steps"] > 0
    assert len({result.saturation[0].u[b].tobytes() for b in range(5)}) > 1  # the samples differ


@pytest.mark.parametrize("seed", [0, 1])
def test_profile_loihi_uses_lava_builtins_exactly(lava_deploy, seed: int) -> None:
    fx_net = random_loihi_network(seed)
    inputs = random_inputs(seed, fx_net, steps=8, batch=3)
    with lava_deploy.deploy(fx_net) as network:
        result = network.run(inputs, record=True)
        assert type(network._engine).__name__ == "_BuiltinEngine"
    assert_same_as_simulate(fx_net, inputs, result)


def test_runtime_stops_after_an_exception_in_the_with_block(lava_deploy, monkeypatch) -> None:
    """Ctrl-C while results are read (after one good run): the runtime is stopped and its worker processes are
    gone; so is a runtime compiled but never run (Lava's own stop() skips those)."""
    fx_net = random_dense_network(7)
    inputs = random_inputs(7, fx_net, steps=4, batch=2)
    before = len(multiprocessing.active_children())
    with pytest.raises(KeyboardInterrupt), lava_deploy.deploy(fx_net) as network:
        network.run(inputs)
        engine = network._engine
        assert engine.started and len(multiprocessing.active_children()) > before

        def interrupted() -> np.ndarray:
            raise KeyboardInterrupt

        monkeypatch.setattr(engine.extractors[-1], "receive", interrupted)
        network.run(inputs)
    assert network._engine is None and not engine.started and not engine.anchor.runtime._is_started
    assert len(multiprocessing.active_children()) == before
    network = lava_deploy.deploy(fx_net, sample_steps=inputs.shape[0])
    network._engine_for(inputs.shape[0], record=False).start()
    network.close()
    assert len(multiprocessing.active_children()) == before


def _check_bad_inputs(network, inputs: np.ndarray) -> None:
    """On a compiled network: bad inputs are ValueErrors naming the problem, and leave the network usable."""
    with pytest.raises(ValueError, match="integers"):
        network.run(inputs.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        network.run(inputs + 300)
    with pytest.raises(ValueError, match="shape"):
        network.run(inputs[..., :-1])
    with pytest.raises(ValueError, match="sample_steps"):
        network.run(inputs[:-1])
    assert network._engine is not None and network._engine.started


def test_bad_arguments_name_the_problem(lava_deploy) -> None:
    fx_net = random_dense_network(8)
    with pytest.raises(ValueError, match="profile"):
        lava_deploy.deploy(fx_net, profile="loihi")
    with pytest.raises(ValueError, match="floating_pt"):
        lava_deploy.deploy(fx_net, floating_pt=True)
    with pytest.raises(ValueError, match="FixedPointNetwork"):
        lava_deploy.deploy(42)
    with pytest.raises(ValueError, match="copies"):
        lava_deploy.deploy(fx_net, copies=0)
    with pytest.raises(ValueError, match="copies"):
        lava_deploy.deploy(random_loihi_network(0), copies=2)


def _export(nir_io, model, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        return nir_io.to_nir(model, input_shape=shape)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_floating_pt_matches_the_float_module(lava_deploy, nir_io, kind: str) -> None:
    """The float network (floating_pt) is the NIR importer's float64 module shifted by k + 1 steps for layer k
    (one synaptic delay per layer, bias from step k + 1); the readout's v is the running sum of its output."""
    from bso_deploy.hardware.backends import run_float
    from helpers import randomise_batchnorm

    from bso_deploy.models import build_mlp, build_vgg
    from bso_deploy.neuron import LIFParameters

    if kind == "mlp":
        shape = (10,)
        model = build_mlp((10, 24, 16, 4), binary="hidden", lif=LIFParameters(reset="subtract"), seed=1)
    else:
        shape = (2, 8, 8)
        model = build_vgg(shape, num_classes=3, channels=(4, "A", 6, "A"), seed=2)
    graph = _export(nir_io, randomise_batchnorm(model, 3), shape)
    steps, batch = 6, 10
    x = np.random.default_rng(4).random((steps, batch, *shape))
    expected = run_float(graph, "float", x, record=True)
    with lava_deploy.deploy(graph, floating_pt=True, copies=3 if kind == "mlp" else 1) as network:
        layers = network.num_layers
        result = network.run(np.concatenate([x, np.zeros((layers, *x.shape[1:]))]), record=True)
    names = list(expected.layers)
    assert len(names) == layers - 1 and result.spikes[0].dtype == np.float64
    for index, name in enumerate(names):
        np.testing.assert_array_equal(result.spikes[index][index + 1:index + 1 + steps], expected.layers[name],
                                      err_msg=name)
    assert any(expected.layers[name].any() for name in names)
    readout = result.output[layers:layers + steps]
    np.testing.assert_allclose(readout, np.cumsum(expected.output, axis=0), rtol=1e-9, atol=1e-9)
