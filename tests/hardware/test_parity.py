"""hardware/parity.py: sim == torch exactly on compiled random networks in both profiles, the report of a
deliberate divergence, and the delay alignment of the float-vs-fixed comparison (docs/fixed-point.md §5.1)."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest
from conftest import require
from helpers import randomise_batchnorm as shared_randomise_batchnorm
from torch import nn

from bso_deploy.models import build_mlp, build_vgg
from bso_deploy.neuron import LIFParameters


@pytest.fixture(scope="module")
def parity(nir_io):
    return require("bso_deploy.hardware.parity")


def randomise_batchnorm(model: nn.Module, seed: int, uniform_scale: bool = False) -> nn.Module:
    return shared_randomise_batchnorm(model, seed, uniform_scale=uniform_scale)


def export(nir_io, model, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        return nir_io.to_nir(model, input_shape=shape)


def random_graph(nir_io, kind: str, seed: int):
    """(graph, input shape, profile) of a random network of the given kind."""
    rng = np.random.default_rng(seed)
    if kind == "bso-mlp":
        reset = LIFParameters(reset=("subtract", "zero")[seed % 2], tau=float(rng.choice([2.0, 3.0])))
        model = build_mlp((10, 24, 16, 4), binary=("hidden", "all")[seed % 2], lif=reset, seed=seed)
        return export(nir_io, randomise_batchnorm(model, seed), (10,)), (10,), "bso"
    if kind == "bso-conv":
        model = build_vgg((2, 8, 8), num_classes=3, channels=(4, "A", 6, "A"), seed=seed)
        return export(nir_io, randomise_batchnorm(model, seed), (2, 8, 8)), (2, 8, 8), "bso"
    zero = LIFParameters(reset="zero", threshold=float(rng.uniform(0.5, 1.5)))
    model = build_mlp((10, 24, 16, 4), binary=("none", "hidden")[seed % 2], lif=zero, seed=seed)
    return export(nir_io, randomise_batchnorm(model, seed, uniform_scale=True), (10,)), (10,), "loihi"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["bso-mlp", "bso-conv", "loihi-mlp"])
def test_sim_and_torch_have_no_mismatch(parity, nir_io, kind, seed) -> None:
    graph, shape, profile = random_graph(nir_io, kind, seed)
    inputs = np.random.default_rng(100 + seed).random((6, 8, *shape))
    report = parity.check_parity(graph, inputs=inputs, profile=profile)
    assert report.mismatches == 0 and report.first_divergence is None and report.ok
    assert report.profile == profile and report.samples == 8 and report.time_steps == 6 and report.latency == 3
    assert report.compared_spikes > 0 and report.compared_states > 0
    assert set(report.float_fixed_agreement) == {name for name in _spiking_nodes(graph)}
    assert all(0.0 <= value <= 1.0 for value in report.float_fixed_agreement.values())
    json.dumps(report.to_dict())


def _spiking_nodes(graph) -> list[str]:
    return [name for name, node in graph.nodes.items() if type(node).__name__ == "LIF"]


def flip_one_spike(layer_index: int, step: int, batch: int, neuron: int):
    """A test-only fixed backend: the simulator with one spike of one layer flipped and its v changed."""

    def run(fx_net, integers, record):
        result = require("bso_deploy.hardware.simulator").simulate(fx_net, integers, record)
        spikes, v = [s.copy() for s in result.spikes], [values.copy() for values in result.v]
        where = (step, batch, *np.unravel_index(neuron, fx_net.layers[layer_index].output_shape))
        spikes[layer_index][where] ^= 1
        v[layer_index][where] += 7
        return result._replace(spikes=tuple(spikes), v=tuple(v))

    return run


def test_a_divergence_is_reported_where_it_happens(parity, nir_io, monkeypatch) -> None:
    backends = require("bso_deploy.hardware.backends")
    graph, shape, _ = random_graph(nir_io, "bso-conv", 0)
    monkeypatch.setitem(backends.BACKENDS, "flipped", backends.Backend("flipped", "fixed", flip_one_spike(1, 4, 2, 37)))
    monkeypatch.setitem(backends.BACKENDS, "flipped-later",
                        backends.Backend("flipped-later", "fixed", flip_one_spike(0, 6, 0, 3)))
    inputs = np.random.default_rng(0).random((5, 4, *shape))
    report = parity.check_parity(graph, backends=("sim", "flipped-later", "flipped"), inputs=inputs)
    assert report.mismatches == 2 and not report.ok
    first = report.first_divergence
    assert (first["layer"], first["layer_index"], first["step"], first["batch"], first["neuron"]) == \
        ("lif_6", 1, 4, 2, 37)
    assert first["neuron_index"] == [2, 1, 1]  # 37 in the (6, 4, 4) feature map
    assert first["backends"] == ["sim", "flipped"]
    assert first["spike"]["sim"] != first["spike"]["flipped"]
    assert first["v"]["flipped"] == first["v"]["sim"] + 7 and first["u"]["sim"] == first["u"]["flipped"]
    assert json.loads(json.dumps(report.to_dict()))["first_divergence"] == first


def exact_if_graph(nir):
    """IF neurons (no leak, gain r dt = 1) and weights on a 1/8 grid with max |q| = 127: the compiled network
    is exact, so the fixed-point spikes equal the float ones shifted by k + 1 steps for layer k."""
    rng = np.random.default_rng(3)

    def weight(n_out, n_in):
        q = rng.integers(-127, 128, size=(n_out, n_in))
        q[0, 0] = 127
        return q / 8.0

    def neuron(n):
        return nir.IF(r=np.full(n, 1000.0), v_threshold=np.full(n, 24.0), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type=np.array([6])), "syn_0": nir.Linear(weight=weight(12, 6)),
             "if_0": neuron(12), "syn_1": nir.Linear(weight=weight(8, 12)), "if_1": neuron(8),
             "readout": nir.Linear(weight=weight(3, 8)), "output": nir.Output(output_type=np.array([3]))}
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), metadata={"dt": 1e-3}, type_check=False)


def test_float_and_fixed_spikes_align_with_one_delay_per_layer(parity, nir) -> None:
    graph = exact_if_graph(nir)
    backends = require("bso_deploy.hardware.backends")
    inputs = (np.random.default_rng(4).random((8, 16, 6)) < 0.5).astype(np.float64)
    report = parity.check_parity(graph, inputs=inputs, input_scale=1.0)
    assert report.float_fixed_agreement == {"if_0": 1.0, "if_1": 1.0}
    assert report.prediction_agreement == 1.0 and report.mismatches == 0
    # the delay rule: layer k at fixed step t + k + 1 is float step t; one step off does not match
    compiler = require("bso_deploy.hardware.compiler")
    fx_net = compiler.compile_nir(graph, input_scale=1.0, time_steps=8)
    fixed = backends.run_fixed(fx_net, "sim", inputs, record=True)
    floating = backends.run_float(graph, "float", inputs, record=True)
    for k, name in enumerate(("if_0", "if_1")):
        assert floating.layers[name].sum() > 20
        np.testing.assert_array_equal(fixed.layers[name][k + 1:k + 9], floating.layers[name])
        assert not np.array_equal(fixed.layers[name][k:k + 8], floating.layers[name])


def test_accuracies_and_argument_errors(parity, nir_io) -> None:
    graph, shape, _ = random_graph(nir_io, "bso-mlp", 0)
    inputs = np.random.default_rng(5).random((10, *shape))
    labels = np.arange(10) % 4
    report = parity.check_parity(graph, inputs=inputs, labels=labels, time_steps=4)
    for value in (report.float_accuracy, report.fixed_accuracy, report.prediction_agreement):
        assert 0.0 <= value <= 1.0
    assert set(report.to_dict()) >= {"backends", "samples", "compared_spikes", "mismatches", "first_divergence",
                                     "float_accuracy", "fixed_accuracy", "float_fixed_agreement"}
    assert set(report.backend_accuracy) == set(report.backend_seconds) == {"sim", "torch"}
    hw_backends = require("bso_deploy.hardware.backends")
    compiled = require("bso_deploy.hardware.compiler").compile_nir(graph, profile="bso", time_steps=4)
    truth_sim = hw_backends.run_fixed(compiled, "sim", hw_backends.prepare_inputs(inputs, shape, 4)).predictions \
        == labels
    assert report.backend_accuracy["sim"] == report.backend_accuracy["torch"] == float(np.mean(truth_sim))
    with pytest.raises(ValueError, match="not a fixed-point backend"):
        parity.check_parity(graph, backends=("float", "sim"), inputs=inputs, time_steps=4)
    with pytest.raises(ValueError, match=r"valid backends: .*sim"):
        parity.check_parity(graph, backends=("sim", "loihi2"), inputs=inputs, time_steps=4)
    with pytest.raises(ValueError, match="at least one"):
        parity.check_parity(graph, backends=(), inputs=inputs, time_steps=4)
    with pytest.raises(ValueError, match="needs inputs"):
        parity.check_parity(graph)
    with pytest.raises(ValueError, match="labels"):
        parity.check_parity(graph, inputs=inputs, labels=labels[:3], time_steps=4)


def test_dataset_samples(parity) -> None:
    inputs, labels = parity.dataset_samples("digits", 12)
    assert inputs.shape == (12, 64) and labels.shape == (12,) and inputs.dtype == np.float32
    assert 0.0 <= inputs.min() and inputs.max() <= 1.0 and labels.dtype == np.int64
    with pytest.raises(ValueError, match="samples"):
        parity.dataset_samples("digits", 0)
