"""hardware/parity.py: sim == torch exactly on compiled random networks in both profiles, the report of a
deliberate divergence, and the delay alignment of the float-vs-fixed comparison (docs/fixed-point.md §5.1)."""

from __future__ import annotations

import itertools
import json
import warnings
from types import MappingProxyType

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
    for table in (report.spike_ratio, report.spike_precision, report.spike_recall):
        assert set(table) == set(report.float_fixed_agreement)
    for name, recall in report.spike_recall.items():  # recall = matched / float, precision = matched / fixed
        if recall is not None and report.spike_precision[name] is not None:
            assert recall * report.float_spikes[name] == pytest.approx(
                report.spike_precision[name] * report.fixed_spikes[name])
    assert report.saturation_backends == ("sim", "torch") and report.saturation_mismatches == 0
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
    monkeypatch.setattr(backends, "BACKENDS", MappingProxyType({  # the table is immutable: replace it for the test
        **backends.BACKENDS, "flipped": backends.Backend("flipped", "fixed", flip_one_spike(1, 4, 2, 37)),
        "flipped-later": backends.Backend("flipped-later", "fixed", flip_one_spike(0, 6, 0, 3))}))
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


def two_layer_network(network, shape=(3,)):
    """A bso network of two spiking dense layers "a" and "b" (shape neurons each) on 2 inputs, for the
    float-vs-fixed metrics: only the layer names, shapes and order matter there."""
    layers = (network.FixedPointLayer("a", "dense", (2,), np.ones((shape[0], 2), np.int64), vth=1),
              network.FixedPointLayer("b", "dense", shape, np.ones((shape[0], shape[0]), np.int64), vth=1))
    return network.FixedPointNetwork("bso", (2,), layers, input_scale=1.0, input_max=255)


def test_spike_ratio_precision_and_recall_by_hand(parity) -> None:
    backends = require("bso_deploy.hardware.backends")
    fx_net = two_layer_network(require("bso_deploy.hardware.network"))
    floating = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], np.int8)[:, None]  # (T=4, batch 1, 3)
    fixed_a = np.zeros((6, 1, 3), np.int8)
    fixed_a[0] = fixed_a[5] = 1  # outside layer a's window (steps 1 ... 4): not compared
    fixed_a[1, 0, 0] = fixed_a[3, 0, 0] = 1  # float steps 0 and 2: matched
    fixed_a[2, 0, 2] = 1  # float step 1, neuron 2: the float model is silent there
    fixed_b = np.zeros((6, 1, 3), np.int8)
    fixed_b[2, 0, 1] = fixed_b[4, 0, 0] = 1  # layer b's window is steps 2 ... 5
    float_run = backends.RunResult("float", np.zeros((4, 1, 3)), 0, np.zeros(1, np.int64), 4,
                                   layers={"a": floating, "b": np.zeros_like(floating)})
    fixed_run = backends.RunResult("sim", np.zeros((6, 1, 3)), 2, np.zeros(1, np.int64), 4,
                                   layers={"a": fixed_a, "b": fixed_b})
    match = parity.spike_match(fx_net, float_run, fixed_run)
    a, b = match["a"], match["b"]
    assert (a.float_spikes, a.fixed_spikes, a.matched_spikes) == (4, 3, 2)
    assert (a.ratio, a.precision, a.recall, a.agreement) == (3 / 4, 2 / 3, 2 / 4, 9 / 12)
    assert (b.float_spikes, b.fixed_spikes, b.ratio, b.precision, b.recall) == (0, 2, None, 0.0, None)
    assert parity.float_fixed_agreement(fx_net, float_run, fixed_run) == {"a": 9 / 12, "b": 10 / 12}


def under_firing_graph(nir):
    """Input(1) -> Linear -> IF(20) -> Linear -> Output: neurons 0 and 1 get the input with weight 1, the
    other 18 nothing. With gain 1 and threshold 3 - 1e-5 the float neuron fires when v = 3, every third
    step; the threshold rounds to 3 K in fixed point, where v = 3 K does not fire (v > vth), so the fixed
    neuron fires every fourth step."""
    n = 20
    weight = np.zeros((n, 1))
    weight[:2] = 1.0
    nodes = {"input": nir.Input(input_type=np.array([1])), "syn_0": nir.Linear(weight=weight),
             "if_0": nir.IF(r=np.full(n, 1000.0), v_threshold=np.full(n, 3 - 1e-5), v_reset=np.zeros(n)),
             "readout": nir.Linear(weight=np.ones((2, n))), "output": nir.Output(output_type=np.array([2]))}
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), metadata={"dt": 1e-3}, type_check=False)


def test_an_under_firing_layer_has_high_agreement_but_a_low_spike_ratio(parity, nir) -> None:
    report = parity.check_parity(under_firing_graph(nir), inputs=np.ones((12, 1, 1)), input_scale=1.0)
    # float spikes at steps 2, 5, 8, 11, fixed at 3, 7, 11 (neurons 0 and 1): 8 vs 6, 2 in common
    assert report.float_spikes == {"if_0": 8} and report.fixed_spikes == {"if_0": 6}
    assert report.matched_spikes == {"if_0": 2}
    assert report.spike_ratio == {"if_0": 0.75}
    assert report.spike_precision == {"if_0": 2 / 6} and report.spike_recall == {"if_0": 2 / 8}
    assert report.float_fixed_agreement == {"if_0": 1 - 10 / 240} and report.float_fixed_agreement["if_0"] > 0.95
    assert report.mismatches == 0 and report.warnings == () and report.input_clipped == 0
    data = json.loads(json.dumps(report.to_dict()))
    assert {key: data[key] for key in ("spike_ratio", "spike_precision", "spike_recall")} == {
        "spike_ratio": {"if_0": 0.75}, "spike_precision": {"if_0": 2 / 6}, "spike_recall": {"if_0": 0.25}}


def saturating_network(network):
    """Layer 0: 255-weights at the largest exponent on four 255-inputs, no leak: the synaptic input leaves
    +-(2^15 - 1), u wraps and v clips from the first steps (docs/fixed-point.md §5.6). A readout follows."""
    spec = require("bso_deploy.hardware.spec").SPEC
    first = network.FixedPointLayer("hot", "dense", (4,), np.full((3, 4), spec.weight_max),
                                    weight_exp=spec.weight_exp_max, du=spec.decay_max, dv=0, vth=spec.vth_max)
    readout = network.FixedPointLayer("readout", "dense", (3,), np.ones((2, 3), np.int64), du=spec.decay_max, dv=0,
                                      spiking=False)
    return network.FixedPointNetwork("bso", (4,), (first, readout), input_scale=255.0, input_max=255)


def test_saturation_is_counted_alike_and_reported(parity) -> None:
    backends = require("bso_deploy.hardware.backends")
    fx_net = saturating_network(require("bso_deploy.hardware.network"))
    inputs = np.ones((6, 2, 4))
    inputs[:, 1, 2:] = 0.25
    runs = [backends.run_fixed(fx_net, name, inputs) for name in ("sim", "torch")]
    hot = runs[0].saturation["hot"]
    assert hot.v.shape == (2, 3) and hot.v.sum() > 0 and hot.a.min() > 0 and hot.u.min() > 0
    for layer in ("hot", "readout"):
        for event in ("v", "u", "a"):
            np.testing.assert_array_equal(getattr(runs[0].saturation[layer], event),
                                          getattr(runs[1].saturation[layer], event))
    report = parity.check_parity(fx_net, inputs=inputs)
    assert report.mismatches == 0 and report.saturation_mismatches == 0 and report.saturation_divergence is None
    assert report.saturation_backends == ("sim", "torch") and report.float_model is False
    assert report.saturation["hot"] == hot.totals() and report.saturation["hot"]["a_neurons"] == 6
    assert report.prediction_agreement is None and report.float_fixed_agreement == {}


def miscount(layer_index: int, event: str, batch: int, neuron: int):
    """A test-only fixed backend: the simulator with one saturation count of one layer raised by one."""

    def run(fx_net, integers, record):
        result = require("bso_deploy.hardware.simulator").simulate(fx_net, integers, record)
        counts = list(result.saturation)
        changed = getattr(counts[layer_index], event).copy()
        changed[(batch, *np.unravel_index(neuron, fx_net.layers[layer_index].output_shape))] += 1
        counts[layer_index] = counts[layer_index]._replace(**{event: changed})
        return result._replace(saturation=tuple(counts))

    return run


def test_a_saturation_count_difference_is_a_mismatch(parity, monkeypatch) -> None:
    backends = require("bso_deploy.hardware.backends")
    fx_net = saturating_network(require("bso_deploy.hardware.network"))
    monkeypatch.setattr(backends, "BACKENDS", MappingProxyType({
        **backends.BACKENDS, "miscount": backends.Backend("miscount", "fixed", miscount(1, "u", 1, 0))}))
    report = parity.check_parity(fx_net, backends=("sim", "miscount"), inputs=np.ones((4, 2, 4)))
    assert report.mismatches == report.saturation_mismatches == 1 and report.first_divergence is None
    assert report.saturation_divergence == {"layer": "readout", "event": "u", "batch": 1, "neuron": 0,
                                            "backends": ["sim", "miscount"],
                                            "count": {"sim": report.saturation_divergence["count"]["sim"],
                                                      "miscount": report.saturation_divergence["count"]["sim"] + 1}}
    assert not report.ok


def test_a_compiled_network_takes_no_compile_options(parity, nir) -> None:
    fx_net = saturating_network(require("bso_deploy.hardware.network"))
    with pytest.raises(ValueError, match="input_scale apply to NIR graphs"):
        parity.check_parity(fx_net, inputs=np.ones((4, 1, 4)), input_scale=16.0)
    with pytest.raises(ValueError, match="profile 'bso', not 'loihi'"):
        parity.check_parity(fx_net, inputs=np.ones((4, 1, 4)), profile="loihi")


def _without_seconds(report) -> dict:
    data = report.to_dict()
    assert set(data.pop("backend_seconds")) == set(report.backends)
    return data


@pytest.mark.parametrize("batch_size", [1, 3, 5])
def test_passes_of_any_size_give_the_same_report(parity, nir_io, batch_size) -> None:
    """check_parity runs the samples in passes (bounded memory on a whole test set, issue 13): counts,
    agreements, accuracies, saturation totals and warnings of passes of 1, 3 or 5 of 7 samples equal those of
    one pass; a divergence in a later pass is reported at its sample index in the whole run."""
    graph, shape, _ = random_graph(nir_io, "bso-conv", 1)
    inputs = np.random.default_rng(3).random((5, 7, *shape))
    labels = np.arange(7) % 3
    whole = parity.check_parity(graph, inputs=inputs, labels=labels, batch_size=7)
    assert whole.compared_spikes > 0 and whole.fixed_accuracy is not None and whole.mismatches == 0
    assert _without_seconds(parity.check_parity(graph, inputs=inputs, labels=labels,
                                                batch_size=batch_size)) == _without_seconds(whole)
    fx_net = saturating_network(require("bso_deploy.hardware.network"))
    hot = np.ones((6, 7, 4))
    hot[:, 1::2, 2:] = 0.25
    assert _without_seconds(parity.check_parity(fx_net, inputs=hot, batch_size=batch_size)) == \
        _without_seconds(parity.check_parity(fx_net, inputs=hot))
    backends = require("bso_deploy.hardware.backends")

    def flip_last(fx_net, integers, record):  # flips layer 1, step 4, neuron 5 of the last sample of each pass
        return flip_one_spike(1, 4, integers.shape[1] - 1, 5)(fx_net, integers, record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backends, "BACKENDS", MappingProxyType({
            **backends.BACKENDS, "flipped": backends.Backend("flipped", "fixed", flip_last)}))
        report = parity.check_parity(graph, backends=("sim", "flipped"), inputs=inputs[:, 3:], batch_size=batch_size)
    assert report.mismatches == -(-4 // batch_size)  # one per pass; the first in the whole run's order:
    assert report.first_divergence["batch"] == min(batch_size, 4) - 1  # the last sample of the first pass
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        parity.check_parity(graph, inputs=inputs, batch_size=0)
