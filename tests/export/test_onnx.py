"""ONNX step graphs run in onnxruntime: fixed semantics equal simulate() exactly (spikes and output, every step),
float semantics equal the trained torch model and the NIR importer within float tolerance; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bso_deploy.export.netx.checkpoint import checkpoint_graph
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.quantize import quantize_inputs
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from conftest import require
from helpers import randomise_batchnorm

from bso_deploy.checkpoint import model_payload, save_checkpoint
from bso_deploy.cli import main
from bso_deploy.config import TrainConfig
from bso_deploy.models import build_vgg
from bso_deploy.training import build_network


@pytest.fixture(scope="module")
def onnx_export():
    """bso_deploy.export.onnx with onnx, onnxruntime and nir (fails under CI when missing)."""
    require("onnx")
    require("onnxruntime")
    require("nir")
    return require("bso_deploy.export.onnx")


def random_network(seed: int, profile: str = "bso") -> FixedPointNetwork:
    """Random valid network: a conv layer (padding, stride), a pooled conv or dense layer with binary synapses,
    a dense last layer (readout or spiking); random decays, per-neuron vth and biases with both exponent signs,
    both resets and bias delays (profile bso), or a dense-only profile loihi network."""
    rng = np.random.default_rng(seed)

    def neurons(shape, spiking=True):
        return dict(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)) if spiking else 0,
                    vth=rng.integers(5, 400, size=shape) if spiking else 0,
                    bias_mant=rng.integers(-400, 400, size=shape), bias_exp=rng.integers(-4, 5, size=shape),
                    reset=str(rng.choice(["zero", "subtract"])), bias_delay=int(rng.integers(0, 4)), spiking=spiking)

    readout = bool(rng.integers(0, 2))
    if profile == "loihi":
        sizes = rng.integers(3, 12, size=4)
        layers = [FixedPointLayer(name=f"d{k}", kind="dense", input_shape=(int(sizes[k]),),
                                  weight=rng.integers(-256, 256, size=(sizes[k + 1], sizes[k])),
                                  weight_exp=int(rng.integers(-4, 2)),
                                  **{**neurons(int(sizes[k + 1]), spiking=k < 2 or not readout), "reset": "zero",
                                     "bias_delay": 0, "vth": int(rng.integers(5, 400))}) for k in range(3)]
        return FixedPointNetwork(profile="loihi", input_shape=(int(sizes[0]),), layers=tuple(layers))
    c_in, size = int(rng.integers(1, 3)), 8
    c1, c2 = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    stride = int(rng.integers(1, 3))
    side1 = (size + 2 - 3) // stride + 1
    first = FixedPointLayer(name="conv0", kind="conv", input_shape=(c_in, size, size),
                            weight=rng.integers(-256, 256, size=(c1, c_in, 3, 3)), weight_exp=int(rng.integers(-5, 0)),
                            stride=(stride, stride), padding=(1, 1), **neurons((c1, side1, side1)))
    pool = 2 if side1 % 2 == 0 else 1
    pooled = side1 // pool
    if rng.integers(0, 2):
        second = FixedPointLayer(name="conv1", kind="conv", input_shape=(c1, side1, side1),
                                 weight=rng.choice([-1, 1], size=(c2, c1, 3, 3)), binary=True,
                                 weight_mant=int(rng.integers(1, 128)), weight_exp=int(rng.integers(-3, 3)),
                                 padding=(1, 1), pool=(pool, pool), **neurons((c2, pooled, pooled)))
        flat = c2 * pooled * pooled
    else:
        flat = 7
        second = FixedPointLayer(name="dense1", kind="dense", input_shape=(c1, side1, side1),
                                 weight=rng.choice([-1, 1], size=(flat, c1 * pooled * pooled)), binary=True,
                                 weight_mant=int(rng.integers(1, 128)), weight_exp=int(rng.integers(-3, 3)),
                                 pool=(pool, pool), **neurons(flat))
    last = FixedPointLayer(name="out", kind="dense", input_shape=second.output_shape,
                           weight=rng.integers(-256, 256, size=(5, flat)), weight_exp=int(rng.integers(-1, 3)),
                           **neurons(5, spiking=not readout))
    rounding = ("floor", "nearest")[seed % 2]  # §4.7
    layers = tuple(FixedPointLayer.from_dict({**layer.to_dict(), "shift_rounding": rounding})
                   for layer in (first, second, last))
    return FixedPointNetwork(profile="bso", input_shape=(c_in, size, size), layers=layers)


def assert_same_as_simulator(onnx_export, fx_net, inputs, model=None):
    expected = simulate(fx_net, inputs)
    result = onnx_export.run_onnx(model or onnx_export.onnx_step_model(fx_net, "fixed"), inputs)
    assert len(result.spikes) == len(fx_net.layers)
    for k, spikes in enumerate(expected.spikes):
        assert result.spikes[k].dtype == np.int8
        np.testing.assert_array_equal(result.spikes[k], spikes, err_msg=f"layer {k}")
    assert result.output.dtype == np.int64
    np.testing.assert_array_equal(result.output, expected.output)
    return expected


@pytest.mark.parametrize("seed", range(8))
def test_fixed_random_networks_match_the_simulator_exactly(onnx_export, seed):
    fx_net = random_network(seed, "bso" if seed < 6 else "loihi")
    inputs = np.random.default_rng(50 + seed).integers(0, SPEC.input_max + 1, size=(10, 3, *fx_net.input_shape))
    expected = assert_same_as_simulator(onnx_export, fx_net, inputs)
    assert int(sum(s.sum() for s in expected.spikes)) > 0


def test_fixed_edge_values(onnx_export):
    """u wraps (no compiler bounds here), v saturates, exact halving decays, -1 >> k floors."""
    layer = FixedPointLayer(name="edge", kind="dense", input_shape=(3,), weight=np.array([[255, 254, -256]]),
                            weight_exp=7, du=0, dv=2048, vth=SPEC.vth_max, bias_mant=-4096, bias_exp=-8,
                            reset="subtract")
    readout = FixedPointLayer(name="readout", kind="dense", input_shape=(1,), weight=np.array([[-1]]),
                              weight_exp=-3, du=4095, dv=0, spiking=False, bias_mant=-1, bias_exp=-4)
    fx_net = FixedPointNetwork(profile="bso", input_shape=(3,), layers=(layer, readout))
    inputs = np.array([[255, 255, 0], [255, 255, 0], [0, 0, 255], [255, 0, 0]] * 4).reshape(16, 1, 3)
    assert_same_as_simulator(onnx_export, fx_net, inputs)
    # rounding to nearest (§4.7): -3 >> 1 -> -1, 3 >> 1 -> 2, -5 >> 2 -> -1, 0 -> 0, one step late (§4.8)
    for weight, weight_exp, a in ((-3, -1, -1), (3, -1, 2), (-5, -2, -1), (0, -3, 0)):
        near = FixedPointLayer(name="near", kind="dense", input_shape=(1,), weight=np.array([[weight]]),
                               weight_exp=weight_exp, du=4095, dv=0, spiking=False, shift_rounding="nearest")
        expected = assert_same_as_simulator(onnx_export, FixedPointNetwork("bso", (1,), (near,)),
                                            np.ones((3, 1, 1), np.int64))
        assert expected.output[:, 0, 0].tolist() == [0, a * 64, 2 * a * 64]


def nir_graph(nir_io, model, input_shape):
    with pytest.warns(nir_io.NIRExportWarning, match="subtractive reset"):  # the model's default reset
        return nir_io.to_nir(model, dt=1e-3, input_shape=input_shape)


def test_fixed_compiled_conv_pool_batchnorm_graph(onnx_export, nir_io):
    model = randomise_batchnorm(build_vgg(input_shape=(2, 8, 8), channels=(4, "A", 6, "A"), num_classes=3), 5)
    graph = nir_graph(nir_io, model, (2, 8, 8))
    fx_net = compile_nir(graph, time_steps=4)
    assert [layer.kind for layer in fx_net.layers] == ["conv", "conv", "dense"]
    assert fx_net.layers[1].binary and fx_net.layers[1].pool == (2, 2)
    inputs = append_zero_steps(quantize_inputs(fx_net, np.random.default_rng(1).random((4, 3, 2, 8, 8))), 3)
    assert_same_as_simulator(onnx_export, fx_net, inputs, onnx_export.onnx_step_model(graph, "fixed", time_steps=4))
    # the float step of the same graph: the NIR importer's outputs (the classifier current)
    pixels = torch.rand(5, 3, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = nir_io.from_nir(graph)(pixels).numpy()
    result = onnx_export.run_onnx(onnx_export.onnx_step_model(graph, "float"), pixels.numpy())
    np.testing.assert_allclose(result.output, expected, rtol=1e-4, atol=1e-4)


def make_checkpoint(tmp_path, reset: str, seed: int = 3):
    config = TrainConfig(dataset="digits", hidden=(16, 12), reset=reset, method="bso")
    model = randomise_batchnorm(build_network(config, (64,), 10), seed)
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": 2, "optimizers": {}, "history": []}
    return save_checkpoint(tmp_path / f"checkpoint_{reset}.pt", payload), model


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_float_checkpoint_matches_the_torch_model_and_nir(onnx_export, nir_io, tmp_path, reset):
    onnx = require("onnx")
    checkpoint, model = make_checkpoint(tmp_path, reset)
    result = onnx_export.export_checkpoint_to_onnx(checkpoint, tmp_path / "model.onnx")
    assert result.semantics == "float" and result.network is None and result.path.is_file()
    loaded = onnx.load(str(result.path))
    onnx.checker.check_model(loaded, full_check=True)
    info = json.loads({p.key: p.value for p in loaded.metadata_props}["bso_deploy"])
    assert info["semantics"] == "float" and info["state"] == ["v_0", "v_1"]
    inputs = torch.rand(8, 5, 64, generator=torch.Generator().manual_seed(0))
    run = onnx_export.run_onnx(result.path, inputs.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(run.output, model(inputs).numpy(), rtol=1e-4, atol=1e-4)
        recorded = nir_io.from_nir(checkpoint_graph(checkpoint)).record(inputs)  # the graph --format nir writes
    lif_nodes = [name for name in recorded if name.startswith("lif")]
    assert len(lif_nodes) == len(run.spikes) == 2
    for spikes, name in zip(run.spikes, sorted(lif_nodes, key=lambda n: int(n.split("_")[1]))):
        np.testing.assert_array_equal(spikes, recorded[name].numpy(), err_msg=name)
    assert sum(float(s.sum()) for s in run.spikes) > 0


def test_fixed_checkpoint_matches_the_simulator(onnx_export, tmp_path):
    checkpoint, _ = make_checkpoint(tmp_path, "subtract")
    result = onnx_export.export_checkpoint_to_onnx(checkpoint, tmp_path / "fixed.onnx", semantics="fixed")
    fx_net = result.network
    assert fx_net.profile == "bso" and len(result.notes) == len(fx_net.layers)
    inputs = append_zero_steps(quantize_inputs(fx_net, np.random.default_rng(3).random((4, 6, 64))), fx_net.latency)
    assert_same_as_simulator(onnx_export, fx_net, inputs, result.path)


def test_errors(onnx_export, nir, tmp_path):
    checkpoint, _ = make_checkpoint(tmp_path, "subtract")
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        onnx_export.export_checkpoint_to_onnx(tmp_path / "nothing.pt", tmp_path / "x.onnx")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable bso-deploy checkpoint"):
        onnx_export.export_checkpoint_to_onnx(broken, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="unknown ONNX semantics 'exact'; valid: float, fixed"):
        onnx_export.export_checkpoint_to_onnx(checkpoint, tmp_path / "x.onnx", semantics="exact")
    with pytest.raises(ValueError, match="reset 'subtract' is not available in profile 'loihi'"):
        onnx_export.export_checkpoint_to_onnx(checkpoint, tmp_path / "x.onnx", semantics="fixed", profile="loihi")
    with pytest.raises(ValueError, match="fixed-point semantics only"):
        onnx_export.onnx_step_model(random_network(0), "float")
    cuba = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "affine": nir.Affine(weight=np.ones((2, 3)), bias=np.ones(2)),
        "cuba": nir.CubaLIF(tau_syn=np.full(2, 2e-3), tau_mem=np.full(2, 4e-3), r=np.ones(2), v_leak=np.zeros(2),
                            v_threshold=np.ones(2), v_reset=np.zeros(2)),
        "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "affine"), ("affine", "cuba"), ("cuba", "output")], metadata={"dt": 1e-3})
    with pytest.raises(ValueError, match=r"layer 'cuba': CubaLIF.*float ONNX step"):
        onnx_export.onnx_step_model(cuba, "float")
    with pytest.raises(ValueError, match=r"node 'sum'.*not supported by the compiler"):
        onnx_export.onnx_step_model(nir.NIRGraph(nodes={**cuba.nodes, "sum": nir.Threshold(np.ones(2))},
                                                 edges=[("input", "affine"), ("affine", "sum"), ("sum", "cuba"),
                                                        ("cuba", "output")], metadata={"dt": 1e-3}), "float")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_onnx(onnx_export, tmp_path, capsys):
    checkpoint, _ = make_checkpoint(tmp_path, "zero")
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "f.onnx")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record == {"format": "onnx", "out": str(tmp_path / "f.onnx"), "semantics": "float"}
    assert main(["export", str(checkpoint), "--format", "onnx", "--semantics", "fixed", "--profile", "loihi",
                 "--out", str(tmp_path / "x.onnx")]) == 2  # per-neuron thresholds: profile loihi refuses
    assert "shares one vth per layer" in capsys.readouterr().err
    assert main(["export", str(checkpoint), "--format", "onnx", "--semantics", "fixed", "--input-scale", "16",
                 "--out", str(tmp_path / "x.onnx")]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["semantics"] == "fixed" and record["profile"] == "bso" and record["input_scale"] == 16
    assert "note: layer 'lif_1'" in captured.err
    assert main(["export", str(checkpoint), "--format", "tflite", "--out", str(tmp_path / "x")]) == 2
    assert "valid: nir, netx, onnx" in capsys.readouterr().err


def test_float_cubalif_and_if_match_the_nir_importer(onnx_export, nir_io, nir):
    """A foreign-style graph: CubaLIF (current state i_k) then IF, spiking output."""
    rng = np.random.default_rng(4)
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([6])}),
        "fc1": nir.Linear(weight=rng.normal(0, 1, size=(5, 6))),
        "cuba": nir.CubaLIF(tau_syn=np.full(5, 2e-3), tau_mem=np.full(5, 4e-3), r=np.full(5, 2.0),
                            v_leak=np.zeros(5), v_threshold=np.full(5, 0.3), v_reset=np.zeros(5)),
        "fc2": nir.Affine(weight=rng.normal(0, 1, size=(3, 5)), bias=rng.normal(0, 0.1, size=3)),
        "if": nir.IF(r=np.full(3, 400.0), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "if"), ("if", "output")],
        metadata={"dt": 1e-3})
    model = onnx_export.onnx_step_model(graph, "float")
    assert json.loads(model.metadata_props[0].value)["state"] == ["i_0", "v_0", "v_1"]
    inputs = torch.rand(20, 4, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        recorded = nir_io.from_nir(graph).record(inputs)
    run = onnx_export.run_onnx(model, inputs.numpy())
    np.testing.assert_array_equal(run.spikes[0], recorded["cuba"].numpy())
    np.testing.assert_array_equal(run.output, recorded["if"].numpy())
    assert run.spikes[0].sum() > 0 and run.output.sum() > 0


@pytest.mark.parametrize("seed", range(4))
def test_fixed_recurrent_layers_match_the_simulator(onnx_export, seed):
    """A recurrent layer's own spikes return through its recurrent synapse one step later (docs/fixed-point.md
    §4.9): binary and 8-bit recurrent weights, both roundings, in the ONNX step graph exactly as simulated."""
    rng = np.random.default_rng(seed)
    binary = seed % 2 == 1
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(6,), weight=rng.integers(-256, 256, (5, 6)),
                             weight_exp=-5, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                             vth=rng.integers(0, 60, 5), bias_mant=rng.integers(-20, 20, 5), reset="subtract",
                             recurrent_weight=rng.choice([-1, 1], (5, 5)) if binary else rng.integers(-256, 256,
                                                                                                     (5, 5)),
                             recurrent_binary=binary, recurrent_weight_mant=int(rng.integers(1, 128)) if binary else 1,
                             recurrent_weight_exp=int(rng.integers(-3, 1)),
                             shift_rounding=("floor", "nearest")[seed // 2])
    readout = FixedPointLayer(name="out", kind="dense", input_shape=(5,), weight=rng.integers(-256, 256, (3, 5)),
                              du=4095, dv=0, spiking=False)
    fx_net = FixedPointNetwork("bso", (6,), (hidden, readout))
    inputs = rng.integers(0, SPEC.input_max + 1, size=(12, 3, 6))
    expected = assert_same_as_simulator(onnx_export, fx_net, inputs)
    plain = FixedPointNetwork("bso", (6,), (FixedPointLayer.from_dict({**hidden.to_dict(), "recurrent_weight": None,
                                                                        "recurrent_binary": False,
                                                                        "recurrent_weight_mant": 1,
                                                                        "recurrent_weight_exp": 0}), readout))
    assert expected.spikes[0].any()
    assert not np.array_equal(simulate(plain, inputs, record=True).u[0], simulate(fx_net, inputs, record=True).u[0])
