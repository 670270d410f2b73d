"""lava-dl netx export: files loaded by lava-dl's own ``netx.hdf5.Network`` and run under Lava's fixed_pt runtime
give exactly the simulator's spikes and readout v; the compiler's threshold folding; clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.quantize import FloatLayer, fold_layer_thresholds, quantize_inputs
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from conftest import require, require_lava
from helpers import randomise_batchnorm

from bso_deploy.checkpoint import model_payload, save_checkpoint
from bso_deploy.cli import main
from bso_deploy.config import TrainConfig
from bso_deploy.training import build_network


@pytest.fixture(scope="module")
def netx_loader():
    """lava-dl's netx package (Lava with the project's fix applied first); fails under CI when missing."""
    require_lava()
    return require("lava.lib.dl.netx")


@pytest.fixture(scope="module")
def netx_export():
    require("nir")
    require("h5py")
    return require("bso_deploy.export.netx")


def run_netx_file(path, inputs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """lava-dl's loader on Lava fixed_pt: (spikes per layer (T, n), last layer's v (T, n))."""
    spikes, v = require("bso_deploy.hardware.lava.netx_runner").run_lavadl_netx(path, inputs)
    return spikes, v[-1]


def random_loihi_network(seed: int) -> FixedPointNetwork:
    """A netx-expressible network: 8-bit layers (2 q, exponent -1) and binary ones (signs, magnitude, exponent 0),
    one vth per layer, biases in units of 64, random decays; a readout or a spiking last layer."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(2, 4))
    sizes = [int(n) for n in rng.integers(3, 14, size=depth + 1)]
    readout = bool(rng.integers(0, 2))
    layers = []
    for k in range(depth):
        last = k == depth - 1
        spiking = not (last and readout)
        binary = k > 0 and bool(rng.integers(0, 2))
        shape = (sizes[k + 1], sizes[k])
        weights = dict(binary=True, weight=rng.choice([-1, 1], size=shape), weight_mant=int(rng.integers(1, 128)),
                       weight_exp=0) if binary else dict(weight=2 * rng.integers(-60, 80, size=shape), weight_exp=-1)
        layers.append(FixedPointLayer(
            name=f"layer{k}", kind="dense", input_shape=(sizes[k],), du=int(rng.integers(0, 4096)),
            dv=int(rng.integers(0, 4096)) if spiking else 0, vth=int(rng.integers(20, 3000)) if spiking else 0,
            bias_mant=rng.integers(-30, 30, size=sizes[k + 1]), bias_exp=SPEC.state_shift, spiking=spiking,
            **weights))
    return FixedPointNetwork(profile="loihi", input_shape=(sizes[0],), layers=tuple(layers))


@pytest.mark.parametrize("seed", range(4))
def test_random_networks_run_exactly_in_lava_dl(netx_loader, netx_export, seed, tmp_path):
    fx_net = random_loihi_network(seed)
    path = netx_export.write_netx(fx_net, tmp_path / "model.net")
    inputs = np.random.default_rng(100 + seed).integers(0, SPEC.input_max + 1, size=(18, 1, *fx_net.input_shape))
    expected = simulate(fx_net, inputs)
    spikes, v = run_netx_file(path, inputs[:, 0])
    assert sum(int(s.sum()) for s in expected.spikes[:-1]) > 0  # the case exercises spikes
    for k, layer_spikes in enumerate(expected.spikes):
        np.testing.assert_array_equal(spikes[k], layer_spikes[:, 0], err_msg=f"layer {k}")
    if not fx_net.layers[-1].spiking:
        np.testing.assert_array_equal(v, expected.output[:, 0])
    info = netx_export.read_netx_info(path)
    assert info["input_message_bits"] == SPEC.input_bits and info["latency"] == fx_net.latency


def make_checkpoint(tmp_path, reset: str, seed: int = 3):
    """A digits MLP checkpoint (hidden 16, 12; binary hidden layer; BatchNorm with per-neuron statistics)."""
    config = TrainConfig(dataset="digits", hidden=(16, 12), reset=reset, method="bso")
    model = randomise_batchnorm(build_network(config, (64,), 10), seed)
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": 2, "optimizers": {}, "history": []}
    return save_checkpoint(tmp_path / f"checkpoint_{reset}.pt", payload), model


def test_checkpoint_exports_and_runs_exactly_in_lava_dl(netx_loader, netx_export, tmp_path):
    checkpoint, _ = make_checkpoint(tmp_path, "zero")
    result = netx_export.export_checkpoint_to_netx(checkpoint, tmp_path / "out" / "model.net", input_scale=16)
    fx_net = result.network
    assert result.path.is_file() and [p.name for p in result.path.parent.iterdir()] == ["model.net"]
    assert all(np.ptp(layer.vth) == 0 for layer in fx_net.layers)  # one vth per layer after folding
    assert any("threshold_fold" in report for report in fx_net.quantization)
    assert len(result.notes) == len(fx_net.layers) and "round(16 x)" in result.notes[0]
    pixels = np.random.default_rng(7).random((6, 2, 64))
    inputs = append_zero_steps(quantize_inputs(fx_net, pixels), fx_net.latency)
    expected = simulate(fx_net, inputs)
    assert int(expected.spikes[0].sum()) > 0
    for b in range(inputs.shape[1]):
        spikes, v = run_netx_file(result.path, inputs[:, b])
        for k, layer_spikes in enumerate(expected.spikes):
            np.testing.assert_array_equal(spikes[k], layer_spikes[:, b], err_msg=f"sample {b}, layer {k}")
        np.testing.assert_array_equal(v, expected.output[:, b])


def test_netx_weight_encoding_is_emulated_exactly(netx_loader, netx_export):
    """netx_effective_weight says 'exact' for a weight matrix exactly when lava-dl's optimize_weight_bits and
    Lava's Dense clip and truncation give it back."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(600):
        low, high = sorted(int(v) for v in rng.integers(-300, 300, size=2))
        weight = np.clip(rng.integers(low, high + 1, size=(3, 4)) << int(rng.integers(0, 4)), -300, 300)
        if not weight.any():
            continue
        with np.errstate(divide="ignore"):
            scaled, bits, exponent, _ = optimize_weight_bits(weight.copy())
        mode = determine_sign_mode(scaled)
        applied = truncate_weights(clip_weights(scaled, mode, num_bits=8), mode, bits).astype(np.int64)
        lava_exact = exponent <= 0 and np.array_equal(applied, weight << -exponent)
        ours_exact = np.array_equal(netx_export.netx_effective_weight(weight), weight)
        assert lava_exact == ours_exact, weight
        checked += 1
    assert checked > 500


def float_lif(layer, inputs: np.ndarray) -> np.ndarray:
    """Spikes of a spiking FloatLayer (dense, LIF) for inputs (T, batch, n_in), in float64."""
    decay = 1.0 if math.isinf(layer.tau_steps) else 1.0 - 1.0 / layer.tau_steps
    v, spikes = np.zeros((inputs.shape[1], layer.weight.shape[0])), []
    for x in inputs:
        v = decay * v + x @ layer.weight.T + layer.bias
        fired = v > layer.threshold
        v = np.where(fired, 0.0 if layer.reset == "zero" else v - layer.threshold, v)
        spikes.append(fired)
    return np.stack(spikes)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_folding_thresholds_keeps_the_float_network(netx_export, reset):
    """Scaling row i by theta_ref / theta_i changes no float spike (zero and subtractive reset)."""
    rng = np.random.default_rng(1)
    signs = rng.choice([-1, 1], size=(9, 7))
    alpha = rng.uniform(0.2, 2.0, size=9)
    layer = FloatLayer(name="n", nodes=("a", "n"), kind="dense", input_shape=(7,), pool=(1, 1),
                       weight=signs * alpha[:, None], bias=rng.normal(0, 0.2, size=9),
                       threshold=rng.uniform(0.3, 3.0, size=9), tau_steps=2.0, tau_syn_steps=None, reset=reset,
                       signs=signs, alpha=alpha, output_shape=(9,))
    folded, report = fold_layer_thresholds(layer)
    assert np.ptp(folded.threshold) == 0 and not folded.binary and report["binary_to_full_precision"]
    inputs = rng.integers(0, 2, size=(40, 16, 7)).astype(np.float64)
    original = float_lif(layer, inputs)
    assert original.sum() > 0
    np.testing.assert_array_equal(float_lif(folded, inputs), original)
    with pytest.raises(ValueError, match=r"layer 'n'.*threshold is 0 in rows \[2\]"):
        fold_layer_thresholds(FloatLayer(**{**layer.__dict__, "threshold": np.where(np.arange(9) == 2, 0.0, 1.0)}))


def test_loihi_compile_needs_the_fold_for_batchnorm(netx_export, tmp_path):
    graph = netx_export.checkpoint_graph(make_checkpoint(tmp_path, "zero")[0])
    with pytest.raises(ValueError, match="profile 'loihi' shares one vth per layer"):
        compile_nir(graph, profile="loihi")
    folded = compile_nir(graph, profile="loihi", fold_thresholds=True)  # Lava's built-in LIF can run it now
    assert all(np.ptp(layer.vth) == 0 for layer in folded.layers)
    netx = netx_export.compile_for_netx(graph, input_scale=16)
    assert [layer.weight_exp for layer in netx.layers] == [-1] * len(netx.layers)
    assert all(np.all(layer.bias_exp == SPEC.state_shift) for layer in netx.layers)
    readout = netx.quantization[-1]
    assert readout["v_bound"] <= SPEC.vth_max << SPEC.state_shift and readout["netx_compatible"]
    with pytest.raises(ValueError, match=r"layer 'lif_1'.*weight_exp = -\d+ floors the synaptic sum"):
        netx_export.write_netx(folded, tmp_path / "folded.net")
    assert not (tmp_path / "folded.net").exists()


def dense(name: str = "layer", **fields) -> FixedPointLayer:
    values = dict(name=name, kind="dense", input_shape=(4,), weight=2 * np.arange(-6, 6).reshape(3, 4),
                  weight_exp=-1, vth=100, bias_exp=6)
    return FixedPointLayer(**{**values, **fields})


@pytest.mark.parametrize(("fields", "message"), [
    ({"reset": "subtract"}, r"reset 'subtract'.*train with --reset zero"),
    ({"vth": np.array([1, 2, 3])}, r"per-neuron thresholds.*fold_thresholds=True"),
    ({"bias_mant": 5, "bias_exp": 0}, r"multiples of 64"),
    ({"bias_mant": 4095, "bias_exp": 7}, r"13-bit bias_mant"),
    ({"bias_mant": 1, "bias_delay": 2}, r"bias_delay = 2.*from the first step"),
    ({"weight_exp": -3}, r"weight_exp = -3 floors"),
    ({"weight": -np.full((3, 4), 64), "weight_exp": 0}, r"8-bit weight encoding changes weight\[0, 0\] = -64"),
    ({"kind": "conv", "input_shape": (1, 4, 4), "weight": np.ones((2, 1, 3, 3), dtype=np.int64), "vth": 1,
      "pool": (2, 2), "padding": (1, 1)}, r"'conv' layers \(with pooling \(2, 2\)\).*no pooling"),
    ({"weight": np.zeros((3, 4), dtype=np.int64)}, r"all weights are zero"),
])
def test_layers_netx_cannot_express(netx_export, fields, message):
    with pytest.raises(ValueError, match=r"layer 'layer': .*" + message):
        netx_export.netx_layer(dense(**fields))


def test_network_level_errors(netx_export, tmp_path):
    bso = FixedPointNetwork(profile="bso", input_shape=(4,), layers=(dense(),))
    with pytest.raises(ValueError, match="compiled for profile 'loihi', got 'bso'"):
        netx_export.write_netx(bso, tmp_path / "bso.net")
    with pytest.raises(TypeError, match="FixedPointNetwork"):
        netx_export.write_netx("model.nir", tmp_path / "x.net")
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        netx_export.export_checkpoint_to_netx(tmp_path / "nothing.pt", tmp_path / "x.net")
    subtract, _ = make_checkpoint(tmp_path, "subtract")
    with pytest.raises(ValueError, match=r"--reset subtract.*train with `bso-deploy train --reset zero`"):
        netx_export.export_checkpoint_to_netx(subtract, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def test_cli_export_netx(netx_export, tmp_path, capsys):
    checkpoint, _ = make_checkpoint(tmp_path, "zero")
    out = tmp_path / "model.net"
    assert main(["export", str(checkpoint), "--format", "netx", "--out", str(out), "--input-scale", "16"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["format"] == "netx" and record["out"] == str(out) and record["input_scale"] == 16
    assert record["latency"] == 3 and "input_message_bits=8" in record["load"]
    assert "note: layer 'lif_1': weights rounded" in captured.err and out.is_file()
    subtract, _ = make_checkpoint(tmp_path, "subtract")
    assert main(["export", str(subtract), "--format", "netx", "--out", str(tmp_path / "s.net")]) == 2
    assert "--reset zero" in capsys.readouterr().err
    torch.manual_seed(0)  # keep the global generator state deterministic for later tests
