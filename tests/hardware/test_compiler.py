"""hardware/compiler.py and hardware/quantize.py: NIR graphs (ours and hand-written foreign ones) compiled
to integer networks (docs/fixed-point.md §10): ranges, the quantization report, the worst-case bounds, the
errors, profile loihi's restrictions, and the float-vs-fixed fidelity on the digits data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from compiler_checks import chain, check_report_and_bounds, lif
from conftest import require
from helpers import randomise_batchnorm as shared_randomise_batchnorm
from torch import nn

from bso_deploy.models import build_mlp, build_vgg
from bso_deploy.neuron import LIFParameters


@pytest.fixture(scope="module")
def hw(nir_io):
    """The compiler module (needs nir)."""
    return require("bso_deploy.hardware.compiler")


def randomise_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Eval mode, random running statistics and affine parameters, every third gamma negative."""
    return shared_randomise_batchnorm(model, seed, mean_std=2.0, var_low=4.0, var_span=12.0, gamma_span=1.5,
                                      bias_mean=0.5, bias_std=0.5)


def export(nir_io, model: nn.Module, shape: tuple[int, ...]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        return nir_io.to_nir(model, input_shape=shape)


@pytest.mark.parametrize("binary", ["hidden", "all"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_mlp_with_batchnorm_compiles_to_integer_layers(hw, nir_io, binary, reset) -> None:
    model = randomise_batchnorm(build_mlp((16, 12, 10, 5), binary=binary, lif=LIFParameters(reset=reset)), 3)
    graph = export(nir_io, model, (16,))
    fx_net = hw.compile_nir(graph, time_steps=6)
    expected = ["lif_2", "lif_5", "affine_6"] if binary == "all" else ["lif_1", "lif_4", "affine_5"]
    assert [layer.name for layer in fx_net.layers] == expected
    assert fx_net.input_shape == (16,) and fx_net.output_shape == (5,) and fx_net.latency == 3
    # a binary readout of uneven alpha (random BatchNorm) is compiled as full precision (§10.2)
    assert [layer.binary for layer in fx_net.layers] == [binary == "all", True, False]
    assert ("note" in fx_net.quantization[-1]) == (binary == "all")
    for layer in fx_net.layers[:-1]:
        assert (layer.du, layer.dv, layer.reset, layer.spiking) == (SPEC.decay_max, 2048, reset, True)
    readout = fx_net.layers[-1]
    assert (readout.spiking, readout.du, readout.dv) == (False, SPEC.decay_max, 0)
    check_report_and_bounds(fx_net)
    assert fx_net.quantization[-1]["readout_steps"] == 6 + 3
    # binary rows: the signs of the metadata (negative gamma flipped), thresholds theta / alpha_i
    node = graph.nodes[fx_net.quantization[1]["nodes"][0]]
    np.testing.assert_array_equal(fx_net.layers[1].weight, node.metadata["signs"])
    per_row = fx_net.quantization[1]["scale"] / np.asarray(node.metadata["alpha"], np.float64)
    np.testing.assert_array_equal(fx_net.layers[1].vth, np.floor(per_row * 1.0 + 0.5).astype(np.int64))
    assert np.ptp(fx_net.layers[1].vth) > 0  # per-neuron thresholds (profile bso)


def test_conv_net_with_average_pooling(hw, nir_io, nir) -> None:
    model = randomise_batchnorm(build_vgg(input_shape=(2, 8, 8), channels=(4, "A", 8, "A"), num_classes=3), 5)
    graph = export(nir_io, model, (2, 8, 8))
    fx_net = hw.compile_nir(graph)
    conv0, conv1, readout = fx_net.layers
    assert (conv0.kind, conv0.pool, conv0.binary, conv0.padding, conv0.output_shape) == ("conv", (1, 1), False,
                                                                                          (1, 1), (4, 8, 8))
    assert (conv1.kind, conv1.pool, conv1.binary, conv1.input_shape) == ("conv", (2, 2), True, (4, 8, 8))
    assert (readout.kind, readout.pool, readout.input_shape, readout.spiking) == ("dense", (2, 2), (8, 4, 4), False)
    assert conv1.vth.shape == (8, 4, 4) and np.all(conv1.vth == conv1.vth[:, :1, :1])  # per channel
    assert fx_net.quantization[1]["nodes"] == ["avgpool_3", "conv_4", "lif_6"]
    assert fx_net.quantization[-1]["readout_steps"] == hw.DEFAULT_TIME_STEPS + 3
    check_report_and_bounds(fx_net)
    # the average pool's 1/4 went into the binary scale: K_i = K / (alpha_i / 4)
    alpha = np.asarray(graph.nodes["conv_4"].metadata["alpha"], np.float64)
    np.testing.assert_allclose(fx_net.quantization[1]["scale_max"], fx_net.quantization[1]["scale"] * 4 / alpha.min())


def test_fixed_point_follows_a_bias_free_foreign_network(hw, nir_io, nir) -> None:
    """A random foreign network (docs/fixed-point.md §10.4): the integer network is the float one delayed, up
    to rounding."""
    rng = np.random.default_rng(2)
    graph = chain(nir, nir.Affine(weight=rng.normal(size=(20, 8)) * 0.6, bias=np.zeros(20)),
                  lif(nir, 20, 3e-3, 3.0), nir.Affine(weight=rng.normal(size=(10, 20)) * 0.5, bias=np.zeros(10)),
                  lif(nir, 10, 2e-3, 2.0), nir.Linear(weight=rng.normal(size=(4, 10))), shape=(8,))
    fx_net = hw.compile_nir(graph, dt=1e-3, time_steps=10)
    inputs = rng.random((10, 64, 8))
    reference = nir_io.from_nir(graph, dt=1e-3, dtype=torch.float64).record(torch.tensor(inputs))
    quantize = require("bso_deploy.hardware.quantize")
    result = simulate(fx_net, append_zero_steps(quantize.quantize_inputs(fx_net, inputs), fx_net.latency))
    for k, name in enumerate(("n1", "n3")):
        agreement = np.mean(result.spikes[k][k + 1:k + 11] == reference[name].numpy())
        assert agreement >= 0.99, (name, agreement)
    # a random network has many near-ties between classes: a few differing spikes flip some (measured 90.6%)
    float_prediction = reference["output"].sum(0).argmax(1).numpy()
    assert np.mean(result.output[-1].argmax(1) == float_prediction) >= 0.85


def float_vs_fixed_agreement(hw, nir_io, model: nn.Module, seed: int, time_steps: int = 4,
                             samples: int = 200) -> tuple[float, FixedPointNetwork]:
    """Share of random inputs in [0, 1) on which the fixed-point readout's argmax (profile bso, flushed) is the
    float model's (readout current summed over the time steps); the model has 16 inputs."""
    quantize = require("bso_deploy.hardware.quantize")
    fx_net = hw.compile_nir(export(nir_io, model, (16,)), profile="bso", time_steps=time_steps)
    x = torch.rand(samples, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x.expand(time_steps, *x.shape)).sum(0).argmax(-1).numpy()
    steps = np.broadcast_to(quantize.quantize_inputs(fx_net, x.numpy()), (time_steps, *x.shape)).copy()
    output = simulate(fx_net, append_zero_steps(steps, fx_net.latency)).output[-1]
    return float(np.mean(output.argmax(-1) == expected)), fx_net


def test_binary_readout_of_uneven_alpha_compiles_in_one_unit(hw, nir_io) -> None:
    """The readout's prediction is the argmax of v over its neurons: with per-row K_i = K / alpha_i (a binary
    readout whose BatchNorm gives every row its own alpha) v_i had different units and float and fixed
    predictions agreed on 25% ... 98% of the inputs (mean 71%, 10 seeds). Its rows are now full precision
    round(c alpha_i sign_ij) with one K (docs/fixed-point.md §10.2); measured 99.0% ... 100% (mean 99.65%)."""
    agreements = []
    for seed in range(4):
        model = randomise_batchnorm(build_mlp((16, 32, 5), binary="all", seed=seed), seed)
        agreement, fx_net = float_vs_fixed_agreement(hw, nir_io, model, seed)
        agreements.append(agreement)
        readout, report = fx_net.layers[-1], fx_net.quantization[-1]
        assert fx_net.layers[0].binary and not readout.binary and not report["binary"]
        assert "alpha" in report["note"] and "one scale K" in report["note"]
        assert report["scale_min"] == report["scale_max"] == report["scale"] and report["weight_bits"] == 8
        check_report_and_bounds(fx_net)
        # q_ij = round(c alpha_i sign_ij), c = 127 / max alpha, stored as 2 q (§4.5)
        node = export(nir_io, model, (16,)).nodes[report["nodes"][0]]
        alpha, signs = np.asarray(node.metadata["alpha"], np.float64), np.asarray(node.metadata["signs"])
        levels = np.floor(127 * alpha / alpha.max() + 0.5).astype(np.int64)
        np.testing.assert_array_equal(readout.weight, 2 * signs * levels[:, None])
        assert f"rows keep {levels.min()} ... 127 of 127 levels" in report["note"]
    assert min(agreements) >= 0.97 and np.mean(agreements) >= 0.985, agreements


def test_binary_readout_of_equal_alpha_stays_binary(hw, nir_io, nir) -> None:
    """One alpha for all rows: K_i = K for every neuron, so the binary readout is exact and stays binary."""
    model = shared_randomise_batchnorm(build_mlp((16, 32, 5), binary="all", seed=1), 1, uniform_scale=True)
    agreement, fx_net = float_vs_fixed_agreement(hw, nir_io, model, 1)
    readout, report = fx_net.layers[-1], fx_net.quantization[-1]
    assert readout.binary and report["binary"] and "note" not in report
    assert report["scale_min"] == report["scale_max"]
    assert agreement >= 0.97
    check_report_and_bounds(fx_net)
    # foreign graphs without metadata: rows of one magnitude are detected as binary, uneven ones are not kept so
    signs = np.where(np.random.default_rng(3).random((3, 4)) < 0.5, -1.0, 1.0)
    hidden = (nir.Affine(weight=np.eye(4), bias=np.zeros(4)), lif(nir, 4, 2e-3, 2.0))
    even = hw.compile_nir(chain(nir, *hidden, nir.Linear(weight=0.25 * signs)), dt=1e-3)
    uneven = hw.compile_nir(chain(nir, *hidden, nir.Linear(weight=signs * np.array([[0.25], [0.5], [1.0]]))),
                            dt=1e-3)
    assert even.layers[-1].binary and "note" not in even.quantization[-1]
    np.testing.assert_array_equal(even.layers[-1].weight, signs)
    assert not uneven.layers[-1].binary and "note" in uneven.quantization[-1]
    np.testing.assert_array_equal(uneven.layers[-1].weight, 2 * signs * np.array([[32], [64], [127]]))
    # the compiler's float reading says the same (what callers that rebuild K_i per neuron rely on)
    for weight, binary in ((0.25 * signs, True), (uneven.layers[-1].weight.astype(float), False)):
        assert [layer.binary for layer in hw.float_layers(chain(nir, *hidden, nir.Linear(weight=weight)),
                                                          dt=1e-3)] == [False, binary]


def exact_graph(nir, reset: str, seed: int = 0, dt: float = 1e-3):
    """6 -> IF(10) -> LIF(8, tau = 2 dt) -> readout(3), every number exactly representable: integer weights
    with max |W| = 127 (so q = W), thresholds and nonzero biases on a 1/4 grid, gains 1, decay 1/2."""
    rng = np.random.default_rng(seed)

    def weights(n_out: int, n_in: int) -> np.ndarray:
        weight = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.float64)
        weight[0, 0] = 127.0
        return weight

    def quarters(low: float, high: float, n: int) -> np.ndarray:
        values = rng.integers(int(4 * low), int(4 * high) + 1, size=n) / 4.0
        return np.where(values == 0, 0.25, values)  # every bias nonzero

    return chain(nir, nir.Affine(weight=weights(10, 6), bias=quarters(-60, 60, 10)),
                 nir.IF(r=np.full(10, 1 / dt), v_threshold=quarters(20, 200, 10), v_reset=np.zeros(10)),
                 nir.Affine(weight=weights(8, 10), bias=quarters(-60, 60, 8)),
                 nir.LIF(tau=np.full(8, 2 * dt), r=np.full(8, 2.0), v_leak=np.zeros(8),
                         v_threshold=quarters(20, 200, 8), v_reset=np.zeros(8)),
                 nir.Affine(weight=weights(3, 8), bias=quarters(-60, 60, 3)), shape=(6,), metadata={"reset": reset})


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_exactly_representable_network_is_the_float_one_shifted(hw, nir_io, nir, reset) -> None:
    """With bias_delay = k + 1 (docs/fixed-point.md §3.4, §5.2) and nothing rounded, layer k's spikes at steps
    k + 1 ... k + T are the float spikes of steps 0 ... T - 1 exactly, biases included, and the readout's last v
    is 64 K times the float output summed over the T steps: each bias counted T times."""
    steps, dt = 6, 1e-3
    graph = exact_graph(nir, reset, dt=dt)
    fx_net = hw.compile_nir(graph, dt=dt, time_steps=steps, input_scale=1.0)
    check_report_and_bounds(fx_net)
    for report in fx_net.quantization:  # nothing is rounded: an exact network
        assert report["weight_max_abs_error"] == report["threshold_max_abs_error"] == 0.0
        assert report["bias_max_abs_error"] == report["decay_error"] == 0.0
    assert all(layer.bias_mant.all() for layer in fx_net.layers)
    quantize = require("bso_deploy.hardware.quantize")
    inputs = (np.random.default_rng(1).random((steps, 64, 6)) < 0.5).astype(np.float64)
    reference = nir_io.from_nir(graph, dt=dt, dtype=torch.float64).record(torch.tensor(inputs))
    integers = append_zero_steps(quantize.quantize_inputs(fx_net, inputs), fx_net.latency)
    result = simulate(fx_net, integers)
    for k, name in enumerate(("n1", "n3")):
        float_spikes = reference[name].numpy().astype(np.int8)
        assert 0.1 < float_spikes.mean() < 0.9, (name, float_spikes.mean())  # neither silent nor saturated
        assert not result.spikes[k][:k + 1].any()  # no input and no bias before step k + 1
        np.testing.assert_array_equal(result.spikes[k][k + 1:k + 1 + steps], float_spikes, err_msg=name)
    readout_scale = 64 * fx_net.quantization[-1]["scale"]
    np.testing.assert_array_equal(result.output[-1], readout_scale * reference["output"].numpy().sum(axis=0))
    # the old rule (bias from step 0) breaks it: the same integers with bias_delay = 0
    early = FixedPointNetwork(fx_net.profile, fx_net.input_shape, tuple(
        FixedPointLayer.from_dict({**layer.to_dict(), "bias_delay": 0}) for layer in fx_net.layers))
    early_result = simulate(early, integers)
    assert not np.array_equal(early_result.spikes[1][2:2 + steps], reference["n3"].numpy())
    assert not np.array_equal(early_result.output[-1], result.output[-1])


def test_loihi_profile_keeps_biases_from_step_0_and_says_so(hw, nir) -> None:
    """Lava's LIF has no bias delay: profile loihi compiles bias_delay = 0 and notes it (§6.1, §10.4)."""
    dt = 1e-3
    graph = chain(nir, nir.Affine(weight=np.eye(4), bias=np.array([0.5, -0.25, 0.0, 1.0])),
                  lif(nir, 4, 2e-3, 2.0), nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)), metadata={})
    loihi, bso = (hw.compile_nir(graph, dt=dt, profile=profile) for profile in ("loihi", "bso"))
    assert [layer.bias_delay for layer in loihi.layers] == [0, 0]
    assert [layer.bias_delay for layer in bso.layers] == [1, 2]
    assert "1 step(s) before the layer's first input" in loihi.quantization[0]["bias_timing_note"]
    assert "bias_timing_note" not in loihi.quantization[1]  # zero bias: its timing does not matter
    assert not any("bias_timing_note" in report for report in bso.quantization)
    check_report_and_bounds(loihi)
    check_report_and_bounds(bso)


def test_weight_bits_and_input_scale_options(hw, nir_io, nir) -> None:
    graph = export(nir_io, randomise_batchnorm(build_mlp((16, 12, 5), binary="none"), 0), (16,))
    fx_net = hw.compile_nir(graph, weight_bits=4, input_scale=15)
    assert np.abs(fx_net.layers[0].weight).max() == 2 * 7  # q in [-7, 7], stored as 2 q
    assert (fx_net.quantization[0]["input_scale"], fx_net.quantization[0]["input_max"]) == (15.0, 15)
    check_report_and_bounds(fx_net)
    quantize = require("bso_deploy.hardware.quantize")
    x = np.array([[0.0, 0.5, 1.0, 2.0] * 4])
    np.testing.assert_array_equal(quantize.quantize_inputs(fx_net, x)[0, :4], [0, 8, 15, 15])  # 7.5 -> 8, clip
    for bad in (np.full((1, 16), np.nan), np.full((1, 16), -0.1), np.array([["a"] * 16])):
        with pytest.raises(ValueError):
            quantize.quantize_inputs(fx_net, bad)
    with pytest.raises(ValueError, match="no input scale"):
        quantize.quantize_inputs(FixedPointNetwork(fx_net.profile, fx_net.input_shape, fx_net.layers), x)


def test_loihi_profile_restrictions(hw, nir_io) -> None:
    zero = LIFParameters(reset="zero")
    subtract = export(nir_io, build_mlp((16, 12, 5), binary="none"), (16,))
    with pytest.raises(ValueError, match=r"'lif_1'.*reset 'subtract'.*profile 'loihi'.*--profile bso"):
        hw.compile_nir(subtract, profile="loihi")
    conv = export(nir_io, build_vgg((2, 4, 4), channels=(2,), num_classes=3, lif=zero), (2, 4, 4))
    with pytest.raises(ValueError, match=r"'conv_0'.*dense connections only.*--profile bso"):
        hw.compile_nir(conv, profile="loihi")
    per_row = export(nir_io, randomise_batchnorm(build_mlp((16, 12, 10, 5), lif=zero), 1), (16,))
    with pytest.raises(ValueError, match=r"layer 'lif_4'.*vth.*alpha.*--profile bso"):
        hw.compile_nir(per_row, profile="loihi")
    fresh = export(nir_io, build_mlp((16, 12, 10, 5), lif=zero).eval(), (16,))  # BatchNorm at init: one alpha
    fx_net = hw.compile_nir(fresh, profile="loihi")
    assert fx_net.profile == "loihi" and all(np.ptp(layer.vth) == 0 for layer in fx_net.layers)
    assert fx_net.layers[1].binary
    check_report_and_bounds(fx_net)


def test_files_round_trips_and_no_builtin_alias(hw, nir_io, tmp_path) -> None:
    graph = export(nir_io, randomise_batchnorm(build_mlp((16, 12, 10, 5)), 2), (16,))
    path = nir_io.write_nir(graph, tmp_path / "model.nir")
    fx_net = hw.compile_nir(path, time_steps=4)
    assert not hasattr(hw, "compile")  # no alias shadowing the builtin compile()
    assert fx_net == hw.compile_nir(graph, time_steps=4)
    assert FixedPointNetwork.load(fx_net.save(tmp_path / "fx.npz")) == fx_net
    assert hw.compile_nir(graph).quantization[-1]["readout_steps"] == hw.DEFAULT_TIME_STEPS + 3
    assert hw.graph_input_shape(graph) == (16,)


def test_digits_fixed_point_predictions_follow_the_float_model(hw, nir_io, tmp_path, record_property) -> None:
    """A briefly trained digits MLP (3 epochs): fixed-point predictions agree with the float model's on at
    least 98.5% of the 450 test samples. Measured 99.8% (449 / 450; accuracy 95.6% both; spike agreement
    99.7% and 99.1%) with each layer's bias starting with its first input (bias_delay = k + 1), against 97.8%
    (fixed accuracy 94.2%) when the biases started at step 0 (docs/fixed-point.md §10.4).

    Training runs in this process on purpose: tqdm's multiprocessing lock fixes the start method, after which
    later tests still import and run Lava (hardware/lava/compat.py)."""
    config_module, run_module = require("bso_deploy.config"), require("bso_deploy.run")
    parity = require("bso_deploy.hardware.parity")
    run = run_module.TrainingRun.create(config_module.TrainConfig(epochs=3, hidden=(64, 64)), tmp_path)
    run.fit(progress=False)
    graph = export(nir_io, run.model.eval(), (64,))
    inputs, labels = require("bso_deploy.parity_data").dataset_samples("digits", 450)
    report = parity.check_parity(graph, inputs=inputs, labels=labels, time_steps=4)
    for key in ("prediction_agreement", "float_accuracy", "fixed_accuracy"):
        record_property(key, getattr(report, key))
    record_property("float_fixed_agreement", report.float_fixed_agreement)
    assert report.mismatches == 0
    assert report.prediction_agreement >= 0.985
    assert report.fixed_accuracy >= report.float_accuracy - 0.015
    assert min(report.float_fixed_agreement.values()) >= 0.98
