"""hardware/calibration.py and the calibrated scaling of hardware/compiler.py (docs/fixed-point.md §10.1, §10.6):
the float model the calibration runs is the NIR float model, calibrated scales keep long non-leaky layers
firing as the float ones do, the input range comes from the data, and bad calibration data is refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointNetwork
from conftest import require


@pytest.fixture(scope="module")
def hw(nir_io):
    return require("bso_deploy.hardware.compiler")


@pytest.fixture(scope="module")
def backends(nir_io):
    return require("bso_deploy.hardware.backends")


def if_conv_graph(nir, seed: int = 0, channels: int = 8, size: int = 12):
    """Sinabs-style IF conv net (dt = 1): conv 3x3 + IF -> sum pool 2 -> flatten -> linear + IF."""
    rng = np.random.default_rng(seed)
    half = size // 2
    neurons = (channels, size, size)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, size, size])}),
        "conv": nir.Conv2d(input_shape=(size, size), weight=rng.normal(0.12, 0.25, (channels, 2, 3, 3)), stride=1,
                           padding=1, dilation=1, groups=1, bias=np.zeros(channels)),
        "if1": nir.IF(r=np.ones(neurons), v_threshold=np.ones(neurons), v_reset=np.zeros(neurons)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([channels, half, half])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.normal(0.02, 0.08, (10, channels * half * half))),
        "if2": nir.IF(r=np.ones(10), v_threshold=np.ones(10), v_reset=np.zeros(10)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), type_check=False)


def lif_mlp_graph(nir, seed: int, sizes=(6, 16, 12, 4), tau: float = 5e-3, dt: float = 1e-3):
    """Norse-style LIF MLP with biases and a non-spiking readout."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([sizes[0]])})}
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        nodes[f"fc{index}"] = nir.Affine(weight=rng.normal(0.4, 1.0, (n_out, n_in)), bias=rng.normal(0.1, 0.2, n_out))
        if index < len(sizes) - 2:
            full = lambda value, n=n_out: np.full(n, value)  # noqa: E731
            nodes[f"lif{index}"] = nir.LIF(tau=full(tau), r=full(1.0), v_leak=full(0.0), v_threshold=full(1.0),
                                           v_reset=full(0.0))
    nodes["output"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), type_check=False)


def event_counts(seed: int, steps: int = 300, batch: int = 16, shape=(2, 12, 12), rate: float = 0.3) -> np.ndarray:
    """Poisson event counts per pixel and step (graded, often > 1), a per-sample rate map held over time."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0, rate, (batch, *shape))
    return rng.poisson(np.broadcast_to(rates, (steps, *rates.shape))).astype(np.float64)


def test_calibration_model_is_the_float_graph(nir, hw, backends) -> None:
    """The float layers the calibration runs fire exactly where the NIR float executor fires (IF conv net and
    LIF MLP), so the peaks it records are those of the graph."""
    calibration = require("bso_deploy.hardware.calibration")
    cases = [(if_conv_graph(nir), 1.0, event_counts(3, steps=60, batch=6)),
             (lif_mlp_graph(nir, 4), 1e-3, np.random.default_rng(5).uniform(0, 1, (20, 8, 6)))]
    for graph, dt, x in cases:
        layers = hw.float_layers(graph, dt=dt)
        activity = calibration.observe_activity(layers, x)
        float_run = backends.run_graph(graph, "float", x, dt=dt, record=True)
        spiking = [layer for layer in layers if layer.spiking]
        assert [layer.name for layer in spiking] == list(float_run.layers)
        for layer, found in zip(layers, activity):
            if layer.spiking:
                assert found.spikes == int(float_run.layers[layer.name].sum()) > 100
            assert found.voltage_peak.shape == layer.output_shape and np.all(found.voltage_peak >= 0)
        assert activity[0].input_peak == x.max()


def spike_ratios(backends, graph, fx_net, x, dt):
    float_run = backends.run_graph(graph, "float", x, dt=dt, record=True)
    fixed_run = backends.run_fixed(fx_net, "sim", x, record=True)
    ratios = {name: fixed_run.layers[name].sum() / float_run.layers[name].sum() for name in float_run.layers}
    agreement = float(np.mean(float_run.predictions == fixed_run.predictions))
    return ratios, agreement


def test_calibrated_scaling_keeps_long_if_layers_firing(nir, hw, backends) -> None:
    """300 steps of event counts through non-leaky IF layers (issue 11, item 1): calibrated on other samples,
    every layer fires within 2% of its float spike count; the worst-case scale is far smaller (its v bound
    sums 300 steps) and loses spikes. Measured: worst-case 96.8% / 99.3% of the float spikes and 75% equal
    predictions, calibrated 100.1% / 100.0% and 94% (docs/fixed-point.md §10.6)."""
    graph = if_conv_graph(nir)
    x, calibration_data = event_counts(1), event_counts(2)
    worst = hw.compile_nir(graph, dt=1.0, scaling="worst-case", calibration=calibration_data)
    calibrated = hw.compile_nir(graph, dt=1.0, calibration=calibration_data)
    assert [q["scaling"] for q in calibrated.quantization] == ["calibrated"] * 2
    assert [q["scaling"] for q in worst.quantization] == ["worst-case"] * 2
    for worst_report, calibrated_report in zip(worst.quantization, calibrated.quantization):
        assert worst_report["binding_bound"] == "v"
        assert calibrated_report["scale"] > 8 * worst_report["scale"]
        assert calibrated_report["calibrated_v_peak"] <= 2**23 - 1
    worst_ratios, worst_agreement = spike_ratios(backends, graph, worst, x, 1.0)
    calibrated_ratios, calibrated_agreement = spike_ratios(backends, graph, calibrated, x, 1.0)
    assert all(0.98 <= ratio <= 1.02 for ratio in calibrated_ratios.values()), calibrated_ratios
    assert all(abs(calibrated_ratios[name] - 1) < abs(worst_ratios[name] - 1) for name in worst_ratios)
    assert calibrated_agreement > worst_agreement
    assert (worst.input_scale, worst.input_max) == (calibrated.input_scale, calibrated.input_max) == (1.0, x.max())


def test_input_range_from_calibration_data(nir, hw) -> None:
    """Integer data keep their integers (scale 1, input_max = their largest value); other data map their
    largest value to 255; a given input_scale is kept; without data the range is [0, 1] (§10.1)."""
    graph = lif_mlp_graph(nir, 1)
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 17, (4, 10, 6)).astype(np.float64)
    fx_net = hw.compile_nir(graph, dt=1e-3, calibration=counts)
    assert (fx_net.input_scale, fx_net.input_max) == (1.0, 16)
    assert fx_net.quantization[0]["input_max"] == 16 and fx_net.quantization[0]["time_steps"] == 4
    grey = rng.uniform(0, 0.5, (4, 10, 6))
    fx_net = hw.compile_nir(graph, dt=1e-3, calibration=grey)
    assert fx_net.input_max == 255 and fx_net.input_scale == pytest.approx(255 / grey.max())
    fx_net = hw.compile_nir(graph, dt=1e-3, calibration=grey, input_scale=100.0)
    assert (fx_net.input_scale, fx_net.input_max) == (100.0, round(100 * grey.max()))
    fx_net = hw.compile_nir(graph, dt=1e-3)
    assert (fx_net.input_scale, fx_net.input_max) == (255.0, 255)
    assert hw.compile_nir(graph, dt=1e-3, input_scale=1.0, input_range=40.0).input_max == 40


def test_calibrated_network_saves_its_input_scale(nir, hw, tmp_path) -> None:
    graph = lif_mlp_graph(nir, 2)
    fx_net = hw.compile_nir(graph, dt=1e-3, calibration=np.random.default_rng(1).integers(0, 9, (5, 8, 6)))
    loaded = FixedPointNetwork.load(fx_net.save(tmp_path / "net.npz"))
    assert loaded == fx_net and (loaded.input_scale, loaded.input_max) == (1.0, 8)
    quantize = require("bso_deploy.hardware.quantize")
    x = np.array([[0.0, 3.0, 8.0, 9.0, 20.0, 7.4]])
    assert quantize.quantize_inputs(loaded, x).tolist() == [[0, 3, 8, 8, 8, 7]]
    assert quantize.clipped_inputs(loaded, x) == 2


def test_network_without_input_scale_takes_integers(nir, hw) -> None:
    fx_net = hw.compile_nir(lif_mlp_graph(nir, 3), dt=1e-3)
    integer_net = FixedPointNetwork(profile=fx_net.profile, input_shape=fx_net.input_shape, layers=fx_net.layers,
                                    input_max=200)
    assert integer_net.input_scale is None and integer_net.input_max == 200
    quantize = require("bso_deploy.hardware.quantize")
    assert quantize.quantize_inputs(integer_net, np.array([0.0, 5.0, 200.0])).tolist() == [0, 5, 200]
    for bad in (np.array([0.5]), np.array([201.0])):
        with pytest.raises(ValueError, match=r"integer inputs in \[0, 200\]"):
            quantize.quantize_inputs(integer_net, bad)


def test_profile_bso_rounds_to_nearest_and_loihi_floors(nir, hw) -> None:
    graph = lif_mlp_graph(nir, 5)
    assert {layer.shift_rounding for layer in hw.compile_nir(graph, dt=1e-3).layers} == {"nearest"}
    loihi = hw.compile_nir(graph, dt=1e-3, profile="loihi")
    assert {layer.shift_rounding for layer in loihi.layers} == {"floor"}
    assert {q["shift_rounding"] for q in loihi.quantization} == {"floor"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"scaling": "calibrated"}, "needs calibration inputs"),
    ({"scaling": "best"}, "scaling must be one of calibrated, worst-case"),
    ({"calibration": np.zeros((4, 3, 5))}, r"calibration inputs have shape \(4, 3, 5\)"),
    ({"calibration": np.full((4, 3, 6), np.nan)}, "NaN/Inf"),
    ({"calibration": -np.ones((4, 3, 6))}, "must be >= 0"),
    ({"calibration": np.ones((4, 3, 6)), "calibration_margin": 0.5}, "calibration_margin must be"),
    ({"calibration": np.array([["a"] * 6])}, "must be real numbers"),
])
def test_bad_calibration_is_a_clear_error(nir, hw, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        hw.compile_nir(lif_mlp_graph(nir, 0), dt=1e-3, **kwargs)


def test_repeated_calibration_samples(nir, hw) -> None:
    """(batch, *input_shape) calibration samples are repeated time_steps times, as run and parity repeat them."""
    graph = lif_mlp_graph(nir, 6)
    frames = np.random.default_rng(2).uniform(0, 1, (12, 6))
    repeated = hw.compile_nir(graph, dt=1e-3, calibration=frames, time_steps=7)
    explicit = hw.compile_nir(graph, dt=1e-3, calibration=np.broadcast_to(frames, (7, 12, 6)), time_steps=7)
    assert repeated == explicit and repeated.quantization[0]["time_steps"] == 7


def if_dense_graph(nir, seed: int = 0, n_in: int = 200, hidden: int = 64, n_out: int = 10):
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Linear(weight=rng.normal(0.03, 0.1, (hidden, n_in))),
             "if1": nir.IF(r=np.ones(hidden), v_threshold=np.ones(hidden), v_reset=np.zeros(hidden)),
             "fc2": nir.Linear(weight=rng.normal(0.05, 0.15, (n_out, hidden))),
             "if2": nir.IF(r=np.ones(n_out), v_threshold=np.ones(n_out), v_reset=np.zeros(n_out)),
             "output": nir.Output(output_type={"output": np.array([n_out])})}
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), type_check=False)


def test_floor_compensation_in_profile_loihi(nir, hw, backends) -> None:
    """Profile loihi floors negative exponents (Lava's Dense); with calibration data the compiler adds the
    expected loss of the floor to each neuron's bias (§10.6). On 300 steps of event counts through worst-case
    scaled IF layers (stored weight_exp -7 and -3) the fixed layers fired 74.6% and 81.6% of the float spikes
    without it, 92.5% and 95.2% with it."""
    graph = if_dense_graph(nir)
    x, calibration_data = event_counts(1, batch=32, shape=(200,), rate=0.2), event_counts(2, shape=(200,), rate=0.2)
    compensated = hw.compile_nir(graph, dt=1.0, profile="loihi", scaling="worst-case", calibration=calibration_data)
    plain = hw.compile_nir(graph, dt=1.0, profile="loihi", input_scale=1.0, input_range=calibration_data.max(),
                           time_steps=300)
    assert [layer.weight_exp for layer in compensated.layers] == [layer.weight_exp for layer in plain.layers]
    assert all(layer.weight_exp < -1 for layer in plain.layers)
    assert all(q["floor_compensation"] > 0 for q in compensated.quantization)
    assert not any("floor_compensation" in q for q in plain.quantization)
    with_offset, _ = spike_ratios(backends, graph, compensated, x, 1.0)
    without, _ = spike_ratios(backends, graph, plain, x, 1.0)
    for name in with_offset:
        assert without[name] < 0.85 and 0.9 < with_offset[name] < 1.1, (without, with_offset)
    bso = hw.compile_nir(graph, dt=1.0, scaling="worst-case", calibration=calibration_data)
    assert not any("floor_compensation" in q for q in bso.quantization)  # profile bso rounds to nearest (§4.7)


def test_bias_correction_restores_the_mean_current_of_rounded_weights(nir, hw, backends) -> None:
    """With 3-bit weights, rounding shifts each neuron's mean current, which IF layers sum over 300 steps; the
    bias correction of §10.6 adds the mean the rounding takes away on the calibration data back to the bias.
    Equal integer weights either way; measured spike ratios 1.043 / 1.063 without it, 0.987 / 0.991 with it."""
    graph = if_dense_graph(nir, seed=3)
    x, calibration_data = event_counts(1, batch=32, shape=(200,), rate=0.2), event_counts(2, shape=(200,), rate=0.2)
    plain = hw.compile_nir(graph, dt=1.0, weight_bits=3, calibration=calibration_data, bias_correction=False)
    corrected = hw.compile_nir(graph, dt=1.0, weight_bits=3, calibration=calibration_data)
    for before, after in zip(plain.layers, corrected.layers):
        np.testing.assert_array_equal(before.weight, after.weight)
    assert all(q["bias_correction"] > 0 for q in corrected.quantization)
    assert not any("bias_correction" in q for q in plain.quantization)
    without, _ = spike_ratios(backends, graph, plain, x, 1.0)
    with_correction, _ = spike_ratios(backends, graph, corrected, x, 1.0)
    for name in without:
        assert abs(with_correction[name] - 1) < 0.5 * abs(without[name] - 1), (without, with_correction)
