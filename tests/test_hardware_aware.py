"""Hardware-aware training: the integer forward is the deployed network (simulator, exactly), its gradients
take the float path, and `bso-deploy train --hardware-aware` trains, evaluates and resumes with it."""

import json

import numpy as np
import pytest
import torch
from bso_deploy.export.nir import NIRExportWarning, export_checkpoint_to_nir
from bso_deploy.hardware.backends import run_fixed
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.network import FixedPointLayer
from bso_deploy.hardware.simulator import synapse_params, synapse_step_int
from bso_deploy.hardware.torch_kernels import synaptic_current
from helpers import randomise_batchnorm

from bso_deploy.checkpoint import load_checkpoint
from bso_deploy.cli import main
from bso_deploy.config import TrainConfig
from bso_deploy.hardware_aware import HardwareAwareNetwork, integer_layer
from bso_deploy.models import build_mlp, build_vgg
from bso_deploy.neuron import LIFParameters
from bso_deploy.parity_data import dataset_samples
from bso_deploy.run import TrainingRun
from bso_deploy.training import make_optimizers, online_loss

SMALL = dict(dataset="digits", time_steps=2, batch_size=128, hidden=(32, 32))


def run_integer_forward(model, inputs, input_shape=None):
    """Undelayed integer forward over inputs (T, batch, ...): spikes per spiking layer (T, batch, ...), the
    readout's v per step, and the network it compiled."""
    network = HardwareAwareNetwork(model, inputs.shape[0], input_shape).eval()
    network.reset_state()
    spikes, readout = [], []
    with torch.no_grad():
        for x_t in inputs:
            network.step(x_t)
            spikes.append([s.to(torch.int8).numpy() for s in network.spikes])
            readout.append(network.readout_v.numpy())
    per_layer = [np.stack([step[k] for step in spikes]) for k in range(len(spikes[0]))]
    return per_layer, np.stack(readout), network


def random_model(case: int):
    rng = np.random.default_rng(case)
    lif = LIFParameters(tau=float(rng.choice([2.0, 4.0, 1.5])), threshold=float(rng.uniform(0.5, 1.5)),
                        reset=("subtract", "zero")[case % 2])
    if case % 4 == 3:
        model = build_vgg((2, 8, 8), 5, channels=(4, "A", 6, "A"), binary=("hidden", "all")[case % 2], lif=lif,
                          seed=case)
        shape = (2, 8, 8)
    else:
        sizes = (int(rng.integers(5, 30)), *rng.integers(3, 40, size=int(rng.integers(1, 4))), int(rng.integers(2, 9)))
        model = build_mlp(tuple(int(s) for s in sizes), binary=("hidden", "all")[case % 2], lif=lif, seed=case)
        shape = (int(sizes[0]),)
    randomise_batchnorm(model, case, bias_mean=float(rng.uniform(-0.5, 0.8)))  # every third gamma negative
    with torch.no_grad():  # full-precision biases too, so that every layer has a bias to start on time
        for module in model.modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and module.bias is not None:
                module.bias.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(case))
    return model, shape


@pytest.mark.parametrize("rounding", ["floor", "nearest"])
@pytest.mark.parametrize(("binary", "weight_exp"), [(False, -3), (True, -1), (True, 2), (False, -8)])
def test_integer_synapse_rounds_as_the_simulator(rounding: str, binary: bool, weight_exp: int):
    """The integer forward's synapse follows the layer's shift_rounding exactly (docs/fixed-point.md §4.7)."""
    rng = np.random.default_rng(weight_exp + 10 + 20 * binary)
    weight = rng.choice([-1, 1], (6, 9)) if binary else rng.integers(-256, 256, (6, 9))
    layer = FixedPointLayer(name="s", kind="dense", input_shape=(9,), weight=weight, binary=binary,
                            weight_mant=37 if binary else 1, weight_exp=weight_exp, shift_rounding=rounding)
    x = rng.integers(0, 256, (40, 9))
    expected = synapse_step_int(x, synapse_params(layer, 255))
    actual = synaptic_current(torch.as_tensor(x), integer_layer(layer, np.ones(6), torch.device("cpu")).synapse).numpy()
    np.testing.assert_array_equal(actual, expected)
    floor = synapse_step_int(x, synapse_params(FixedPointLayer.from_dict({**layer.to_dict(),
                                                                          "shift_rounding": "floor"}), 255))
    assert (weight_exp >= 0) == np.array_equal(expected, floor) or rounding == "floor"


@pytest.mark.parametrize("case", range(12))
def test_integer_forward_is_the_simulator_shifted(case):
    model, shape = random_model(case)
    generator = torch.Generator().manual_seed(100 + case)
    steps, batch = 1 + case % 5, 24
    inputs = torch.rand((steps, batch, *shape), generator=generator)
    if case % 3 == 1:
        inputs = (inputs > 0.6).float()  # rate-coded 0/1 inputs
    inputs[:, 0] = 1.0  # saturated input pixels
    spikes, readout, network = run_integer_forward(model, inputs, shape)
    fx_net = network.fx_net
    deployed = run_fixed(fx_net, "sim", inputs.numpy(), record=True)
    spiking = [layer for layer in fx_net.layers if layer.spiking]
    assert len(spikes) == len(spiking) == len(fx_net.layers) - 1
    for k, layer in enumerate(spiking):  # layer k lags by k + 1 steps (docs/fixed-point.md §5.2)
        np.testing.assert_array_equal(spikes[k], deployed.layers[layer.name][k + 1:k + 1 + steps])
    readout_name = fx_net.layers[-1].name
    np.testing.assert_array_equal(readout, deployed.v[readout_name][fx_net.latency:fx_net.latency + steps])
    np.testing.assert_array_equal(readout[-1].argmax(1), deployed.predictions)
    assert sum(s.sum() for s in spikes) > 0


@pytest.mark.parametrize("case", [1, 3])  # MLP and VGG (conv, pooling, BatchNorm2d), all binary
def test_output_values_are_the_hardware_values_and_gradients_take_the_float_path(case):
    torch.manual_seed(0)
    model, shape = random_model(case)
    model.train()
    network = HardwareAwareNetwork(model, 3, shape).train()
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)]
    assert batchnorms and not any(m.training for m in batchnorms)
    x = torch.rand(16, *shape, generator=torch.Generator().manual_seed(1))
    classes = model.step(x).shape[1]
    y = torch.randint(0, classes, (16,), generator=torch.Generator().manual_seed(2))
    network.reset_state()
    total = 0.0
    for _ in range(3):
        model.zero_grad()
        out = network.step(x)
        total = total + out.detach().double()
        online_loss(out, y, out.shape[1], 3, 0.05).backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    unit = network._layers[-1].unit  # 64 K_i: the readout's v in float units is the summed per-step value
    np.testing.assert_allclose(total.numpy(), (network.readout_v.double() / unit).numpy(), rtol=1e-5, atol=1e-5)
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.dim() > 1)


def test_recompiles_exactly_when_the_parameters_change():
    model, shape = random_model(2)
    config = TrainConfig(hidden=(8,))
    optimizers = make_optimizers(model, config)
    network = HardwareAwareNetwork(model, 2, shape).train()
    x = torch.rand(4, *shape)
    network.reset_state()
    network.step(x)
    with torch.no_grad():
        network.step(x)
    assert network.compilations == 1
    before = network.fx_net
    network.step(x).sum().backward()
    optimizers.step(0)
    network.step(x)
    assert network.compilations == 2 and network.fx_net is not before


def test_config_validation_and_round_trip():
    config = TrainConfig(hardware_aware=True, hardware_aware_epochs=3, epochs=10, fixed_point_samples=100)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert [config.is_hardware_aware_epoch(e) for e in (6, 7, 9)] == [False, True, True]
    assert not TrainConfig(epochs=10).is_hardware_aware_epoch(9)
    with pytest.raises(ValueError, match="not online"):
        TrainConfig(method="bptt-ste", hardware_aware=True)
    with pytest.raises(ValueError, match="hardware_aware_epochs"):
        TrainConfig(hardware_aware_epochs=0)
    with pytest.raises(ValueError, match="fixed_point_samples"):
        TrainConfig(fixed_point_samples=-1)
    with pytest.raises(ValueError, match="--encoder rate"):
        TrainConfig(dataset="cifar10", model="vgg", hardware_aware=True)


def test_cli_hardware_aware_run_is_its_deployment(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--time-steps", "2", "--epochs", "2", "--batch-size", "128",
                 "--hidden", "32,32", "--hardware-aware", "--hardware-aware-epochs", "1", "--out", str(out),
                 "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e.get("hardware_aware", False) for e in metrics["epochs"]] == [False, True]
    fixed = metrics["fixed_point"]
    assert fixed["samples"] == 450 and fixed["integer_forward_agreement"] == 1.0
    assert metrics["prediction_agreement"] == printed["prediction_agreement"] == 1.0
    assert fixed["fixed_accuracy"] == fixed["integer_forward_accuracy"] == metrics["fixed_accuracy"]
    assert metrics["test_accuracy"] == fixed["integer_forward_accuracy"]  # the last epoch's integer accuracy
    # the deployment path from the files: checkpoint -> NIR file -> compile -> simulator
    with pytest.warns(NIRExportWarning, match="subtractive reset"):  # the default reset, carried in metadata
        graph_path = export_checkpoint_to_nir(out / "checkpoint.pt", tmp_path / "model.nir")
    x, labels = dataset_samples("digits", 450)
    deployed = run_fixed(compile_nir(graph_path, profile="bso"), "sim", np.broadcast_to(x, (2, *x.shape)))
    assert float(np.mean(deployed.predictions == labels)) == fixed["fixed_accuracy"]


def test_batchnorm_statistics_stay_frozen_in_hardware_aware_epochs(tmp_path):
    run = TrainingRun.create(TrainConfig(epochs=1, hardware_aware=True, fixed_point_samples=0, **SMALL), tmp_path)
    before = {k: v.clone() for k, v in run.model.state_dict().items() if "running" in k}
    metrics = run.fit(progress=False, plot=False)
    after = run.model.state_dict()
    assert before and all(torch.equal(value, after[key]) for key, value in before.items())
    assert metrics["fixed_point"] == {"skipped": "fixed_point_samples is 0"} and metrics["fixed_accuracy"] is None


def test_without_the_flag_metrics_compare_float_and_fixed(tmp_path):
    run = TrainingRun.create(TrainConfig(epochs=1, fixed_point_samples=200, **SMALL), tmp_path)
    metrics = run.fit(progress=False, plot=False)
    fixed = metrics["fixed_point"]
    assert fixed["samples"] == 200 and fixed["integer_forward_agreement"] == 1.0
    assert metrics["prediction_agreement"] == fixed["float_fixed_agreement"] > 0.9
    assert metrics["float_accuracy"] == fixed["float_accuracy"] and metrics["test_accuracy"] is not None


def test_resume_continues_a_hardware_aware_run_exactly(tmp_path):
    config = TrainConfig(epochs=3, hardware_aware=True, hardware_aware_epochs=2, fixed_point_samples=0,
                         encoder="rate", **SMALL)
    straight = TrainingRun.create(config, tmp_path / "straight")
    straight.fit(progress=False, plot=False)
    interrupted = TrainingRun.create(TrainConfig(**{**config.__dict__, "epochs": 2, "hardware_aware_epochs": 1}),
                                     tmp_path / "resumed")
    interrupted.fit(progress=False, plot=False)  # epoch 2 of 3 is the first hardware-aware one either way
    resumed = TrainingRun.resume(tmp_path / "resumed", epochs=3)
    resumed.fit(progress=False, plot=False)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["config"]["hardware_aware"] is True
    expected, got = straight.model.state_dict(), resumed.model.state_dict()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert [e["loss"] for e in straight.history] == [e["loss"] for e in resumed.history]
    assert [e.get("hardware_aware", False) for e in resumed.history] == [False, True, True]
