"""hardware/backends.py: run_graph on the float, sim and torch backends, the backend table, save_run,
and the input checks."""

from __future__ import annotations

import warnings
from types import MappingProxyType

import numpy as np
import pytest
from conftest import require
from helpers import randomise_batchnorm as shared_randomise_batchnorm
from torch import nn

from bso_deploy.models import build_mlp, build_vgg
from bso_deploy.neuron import LIFParameters

STEPS = 5


@pytest.fixture(scope="module")
def backends(nir_io):
    return require("bso_deploy.hardware.backends")


def randomise_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    return shared_randomise_batchnorm(model, seed)


@pytest.fixture(scope="module")
def mlp_graph(nir_io):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        return nir_io.to_nir(randomise_batchnorm(build_mlp((12, 16, 16, 4)), 0), input_shape=(12,))


@pytest.fixture(scope="module")
def conv_graph(nir_io):
    model = build_vgg((2, 8, 8), num_classes=3, channels=(4, "A", 6, "A"), lif=LIFParameters(reset="zero"))
    return nir_io.to_nir(randomise_batchnorm(model, 1), input_shape=(2, 8, 8))


def inputs(shape: tuple[int, ...], seed: int = 0, batch: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).random((STEPS, batch, *shape))


@pytest.mark.parametrize("which", ["mlp", "conv"])
def test_sim_and_torch_agree_exactly_and_shapes_follow_the_contract(backends, mlp_graph, conv_graph, which) -> None:
    graph, shape = (mlp_graph, (12,)) if which == "mlp" else (conv_graph, (2, 8, 8))
    x = inputs(shape)
    float_run = backends.run_graph(graph, "float", x, record=True)
    sim = backends.run_graph(graph, "sim", x, record=True)
    reference = backends.run_graph(graph, "torch", x, record=True)
    classes = 4 if which == "mlp" else 3
    assert float_run.output.shape == (STEPS, 6, classes) and float_run.latency == 0
    assert sim.latency == reference.latency == 3
    assert sim.output.shape == reference.output.shape == (STEPS + 3, 6, classes)
    assert sim.input_steps == float_run.input_steps == STEPS
    np.testing.assert_array_equal(sim.output, reference.output)
    np.testing.assert_array_equal(sim.predictions, reference.predictions)
    assert sim.layers.keys() == reference.layers.keys() == float_run.layers.keys() and len(sim.layers) == 2
    for name in sim.layers:
        np.testing.assert_array_equal(sim.layers[name], reference.layers[name])
        assert sim.layers[name].shape[0] == STEPS + 3 and float_run.layers[name].shape[0] == STEPS
        assert sim.layers[name].shape[1:] == float_run.layers[name].shape[1:]
    for table in ("u", "v"):
        assert getattr(sim, table).keys() == getattr(reference, table).keys() and len(getattr(sim, table)) == 3
        for name, values in getattr(sim, table).items():
            np.testing.assert_array_equal(values, getattr(reference, table)[name])
    assert sum(values.sum() for values in sim.layers.values()) > 0  # the networks are active
    np.testing.assert_array_equal(float_run.predictions, float_run.output.sum(0).argmax(1))
    np.testing.assert_array_equal(sim.predictions, sim.output[-1].argmax(1))  # the readout's last v
    assert float_run.u == {} and float_run.v == {}


def test_repeated_inputs_and_no_recording(backends, mlp_graph, tmp_path) -> None:
    x = inputs((12,))[0]
    repeated = backends.run_graph(mlp_graph, "sim", x, time_steps=STEPS)
    explicit = backends.run_graph(mlp_graph, "sim", np.broadcast_to(x, (STEPS, *x.shape)))
    np.testing.assert_array_equal(repeated.output, explicit.output)
    assert repeated.layers == {} and repeated.u == {}
    path = backends.run_graph(mlp_graph, "float", x, time_steps=STEPS, record=False)
    assert path.output.shape == (STEPS, 6, 4)
    from_file = backends.run_graph(require("bso_deploy.export.nir").write_nir(mlp_graph, tmp_path / "m.nir"), "sim",
                                   x, time_steps=STEPS)
    np.testing.assert_array_equal(from_file.output, repeated.output)


def test_save_run_writes_the_documented_keys(backends, mlp_graph, tmp_path) -> None:
    result = backends.run_graph(mlp_graph, "sim", inputs((12,)), record=True)
    path = backends.save_run(result, tmp_path / "runs" / "out.npz")
    with np.load(path) as archive:
        assert {"output", "latency", "predictions", "spikes/lif_1", "spikes/lif_4"} <= set(archive.files)
        assert {"u/affine_5", "v/affine_5"} <= set(archive.files)
        np.testing.assert_array_equal(archive["output"], result.output)
        assert int(archive["latency"]) == 3
    assert [p.name for p in path.parent.iterdir()] == ["out.npz"]  # no temporary file left behind
    plain = backends.save_run(backends.run_graph(mlp_graph, "float", inputs((12,))), tmp_path / "float.npz")
    with np.load(plain) as archive:
        assert set(archive.files) == {"output", "latency", "predictions"} and int(archive["latency"]) == 0


def test_bad_inputs_are_clear_errors(backends, mlp_graph) -> None:
    good = inputs((12,))
    with pytest.raises(ValueError, match=r"shape \(5, 6, 11\).*\(T, batch, \*\(12,\)\)"):
        backends.run_graph(mlp_graph, "sim", good[..., :11])
    nan = good.copy()
    nan[2, 1, 3] = np.nan
    for backend in ("float", "sim"):
        with pytest.raises(ValueError, match="1 NaN/Inf"):
            backends.run_graph(mlp_graph, backend, nan)
    with pytest.raises(ValueError, match="pass time_steps"):
        backends.run_graph(mlp_graph, "sim", good[0])
    with pytest.raises(ValueError, match="time_steps=3"):
        backends.run_graph(mlp_graph, "torch", good, time_steps=3)
    with pytest.raises(ValueError, match="must be >= 0"):
        backends.run_graph(mlp_graph, "sim", good - 0.5)
    with pytest.raises(ValueError, match="real numbers"):
        backends.run_graph(mlp_graph, "sim", np.full(good.shape, "x"))
    with pytest.raises(ValueError, match="no time step"):
        backends.run_graph(mlp_graph, "sim", good[:0])


def test_table_lists_valid_names_and_is_immutable(backends, mlp_graph, monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown backend 'loihi2'; valid backends: float, lava, sim, torch"):
        backends.run_graph(mlp_graph, "loihi2", inputs((12,)))
    assert sorted(backends.BACKENDS) == ["float", "lava", "sim", "torch"]
    assert {name: backend.kind for name, backend in backends.BACKENDS.items()} == {
        "float": "float", "sim": "fixed", "torch": "fixed", "lava": "fixed"}
    assert all(backend.name == name for name, backend in backends.BACKENDS.items())
    with pytest.raises(TypeError):
        backends.BACKENDS["sim2"] = backends.BACKENDS["sim"]
    with pytest.raises(ValueError, match=r"unknown backend None; valid backends: float, lava, sim, torch"):
        backends.get_backend(None)
    with pytest.raises(ValueError, match="kind"):
        backends.Backend("x", "analog", lambda: None)
    calls = []

    def counting(fx_net, integers, record):
        calls.append(integers.shape)
        return require("bso_deploy.hardware.simulator").simulate(fx_net, integers, record)

    monkeypatch.setattr(backends, "BACKENDS", MappingProxyType({  # a new backend: a new table (this one's frozen)
        **backends.BACKENDS, "counting": backends.Backend("counting", "fixed", counting)}))
    result = backends.run_graph(mlp_graph, "counting", inputs((12,)))
    assert calls == [(STEPS + 3, 6, 12)] and result.backend == "counting"
    with pytest.raises(ValueError, match="is a float backend"):
        backends.run_fixed(None, "float", inputs((12,)))


def test_compiled_networks_spike_counts_clipping_and_saturation(backends, mlp_graph, tmp_path) -> None:
    compiler = require("bso_deploy.hardware.compiler")
    x = inputs((12,))
    fx_net = compiler.compile_nir(mlp_graph, time_steps=STEPS)
    from_network = backends.run_graph(fx_net, "sim", x, record=True)
    from_graph = backends.run_graph(mlp_graph, "sim", x, record=True)
    np.testing.assert_array_equal(from_network.output, from_graph.output)
    with pytest.raises(ValueError, match=r"compiled network runs on the fixed backends only \(lava, sim, torch\)"):
        backends.run_graph(fx_net, "float", x)
    # spike counts without recording, on both kinds of backend
    for backend in ("sim", "float"):
        plain, recorded = (backends.run_graph(mlp_graph, backend, x, record=flag) for flag in (False, True))
        assert plain.spike_counts == {name: int(s.sum()) for name, s in recorded.layers.items()} != {}
    assert backends.silent_layer_warnings(from_graph) == []
    # saturation counts per layer (docs/fixed-point.md §5.6), saved with the run
    assert set(from_graph.saturation) == {layer.name for layer in fx_net.layers}
    assert from_graph.saturation["lif_1"].v.shape == (6, 16)
    with np.load(backends.save_run(from_graph, tmp_path / "out.npz")) as archive:
        np.testing.assert_array_equal(archive["saturation/lif_1/a"], from_graph.saturation["lif_1"].a)
    # clipped inputs: values with round(255 x) > 255
    loud = x.copy()
    loud[0, 0, :3] = [1.001, 1.002, 3.0]  # 255.3 rounds to 255 (kept), 255.5 and 765 do not
    result = backends.run_graph(fx_net, "sim", loud)
    assert result.input_clipped == 2 and from_graph.input_clipped == 0
    warning = backends.input_clip_warning(fx_net, loud, result.input_clipped)
    assert warning.startswith("2 of 360 input values exceed the network's input range [0, 1]")
    assert "--input-range 3 with --input-scale 85 or less" in warning
    assert backends.input_clip_warning(fx_net, x, 0) is None
    with pytest.raises(ValueError, match="unknown scaling 'best'; valid: calibrated, worst-case"):
        backends.compile_for_inputs(mlp_graph, STEPS, scaling="best")
