"""Export -> nir.write -> nir.read -> import: spike-for-spike identical to the original network.

The exact comparison runs in float64 (folding BatchNorm into the weights reorders float arithmetic); the
float32 comparison counts the spikes that differ and asserts the count is tiny.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import require
from helpers import randomise_batchnorm as shared_randomise_batchnorm
from torch import nn

from bso_deploy.layers import BinaryConv2d, BinaryLinear
from bso_deploy.models import build_mlp, build_vgg
from bso_deploy.network import SpikingNetwork
from bso_deploy.neuron import LIF, LIFParameters

STEPS = 12
BATCH = 6
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: extra intra-op threads only add contention (10x slower on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Eval mode, non-trivial running statistics and affine parameters (some gammas negative)."""
    shared_randomise_batchnorm(model, 1000 + seed, mean_std=2.0, var_low=0.2, var_span=0.8, var_scale=16.0,
                               gamma_span=1.5, bias_mean=0.5, bias_std=0.5)


def custom_network() -> SpikingNetwork:
    """Binary layers without BatchNorm (alpha = 1), a biased binary conv, stride 2, nir.Linear (no bias),
    non-default taus and thresholds, mixed reset modes."""
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    layers = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), LIF(LIFParameters(tau=3.0, reset="zero")),
        BinaryConv2d(6, 6, 3, stride=2, padding=1, bias=True, generator=generator),
        LIF(LIFParameters(tau=4.0, threshold=2.0)),
        nn.AvgPool2d(2), nn.Flatten(),
        BinaryLinear(24, 16, generator=generator), LIF(LIFParameters(tau=1.5, threshold=0.5, reset="zero")),
        nn.Identity(),
        nn.Linear(16, 4, bias=False),
    )
    with torch.no_grad():
        layers[3].bias.uniform_(-0.5, 0.5)
    return SpikingNetwork(layers)


def build(kind: str, binary: str, reset: str, seed: int) -> tuple[SpikingNetwork, tuple[int, ...]]:
    if kind == "mlp":
        model = build_mlp((20, 32, 24, 5), binary=binary, lif=LIFParameters(reset=reset), seed=seed)
        shape: tuple[int, ...] = (20,)
        if binary == "none":  # default init is too weak to make the hidden layers spike
            with torch.no_grad():
                for layer in model.layers[1:]:
                    if isinstance(layer, nn.Linear):
                        layer.weight.mul_(4.0)
    elif kind == "vgg":
        model = build_vgg(input_shape=(2, 8, 8), channels=(4, "A", 8, "A"), binary=binary,
                          lif=LIFParameters(reset=reset), seed=seed)
        shape = (2, 8, 8)
    else:
        model, shape = custom_network(), (2, 8, 8)
    randomise_batchnorm(model, seed)
    return model, shape


def run_model(model: SpikingNetwork, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Outputs (T, batch, classes) and every LIF layer's spikes {layer index: (T, batch, ...)}."""
    recorded: dict[int, list[torch.Tensor]] = {}
    handles = []
    for index, layer in enumerate(model.layers):
        if isinstance(layer, LIF):
            recorded[index] = []
            handles.append(layer.register_forward_hook(
                lambda module, args, out, index=index: recorded[index].append(out.detach().clone())))
    with torch.no_grad():
        outputs = model(inputs)
    for handle in handles:
        handle.remove()
    return outputs, {index: torch.stack(spikes) for index, spikes in recorded.items()}


def export_and_reimport(nir, nir_io, model, shape, tmp_path, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        graph = nir_io.to_nir(model, input_shape=shape)
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    return nir_io.from_nir(nir.read(path), dtype=dtype)


def random_inputs(shape, seed, dtype):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand((STEPS, BATCH, *shape), generator=generator) * 3.0).to(dtype)


CASES = [(kind, binary, reset) for kind in ("mlp", "vgg") for binary in ("hidden", "all", "none")
         for reset in ("subtract", "zero")] + [("custom", "mixed", "mixed")]


@pytest.mark.parametrize(("kind", "binary", "reset"), CASES)
def test_float64_round_trip_is_spike_for_spike_exact(nir, nir_io, tmp_path, kind, binary, reset):
    for seed in SEEDS:
        model, shape = build(kind, binary, reset, seed)
        model.double()
        imported = export_and_reimport(nir, nir_io, model, shape, tmp_path, torch.float64)
        inputs = random_inputs(shape, seed, torch.float64)
        expected_out, expected_spikes = run_model(model, inputs)
        with torch.no_grad():
            recorded = imported.record(inputs)
        total = 0
        for index, spikes in expected_spikes.items():
            rate = spikes.mean().item()
            assert 0.005 < rate < 0.995, f"layer {index} spike rate {rate}: test would not bite"
            torch.testing.assert_close(recorded[f"lif_{index}"], spikes, rtol=0, atol=0)
            total += int(spikes.sum())
        assert total > 0
        # with binary="all" the classifier's BatchNorm is folded into the readout: rounding differs there
        tolerance = 1e-12 if binary == "all" else 0.0
        torch.testing.assert_close(recorded["output"], expected_out, rtol=tolerance, atol=tolerance)
        torch.testing.assert_close(imported(inputs), recorded["output"], rtol=0, atol=0)  # forward() agrees


@pytest.mark.parametrize("kind", ["mlp", "vgg", "custom"])
def test_float32_mismatches_are_counted_and_tiny(nir, nir_io, tmp_path, kind, record_property):
    mismatched = total = 0
    for seed in SEEDS:
        for binary, reset in (("hidden", "subtract"), ("all", "zero")):
            model, shape = build(kind, binary, reset, seed)
            imported = export_and_reimport(nir, nir_io, model, shape, tmp_path, torch.float32)
            inputs = random_inputs(shape, seed, torch.float32)
            expected_out, expected_spikes = run_model(model, inputs)
            with torch.no_grad():
                recorded = imported.record(inputs)
            for index, spikes in expected_spikes.items():
                mismatched += int((recorded[f"lif_{index}"] != spikes).sum())
                total += int(spikes.sum())
            if mismatched == 0:
                torch.testing.assert_close(recorded["output"], expected_out, rtol=1e-5, atol=1e-5)
    record_property("float32_spike_mismatches", f"{mismatched} of {total}")
    print(f"float32 {kind}: {mismatched} mismatched spikes of {total}")
    assert total > 1000
    assert mismatched <= 0.001 * total


def test_binary_metadata_survives_the_file(nir, nir_io, tmp_path):
    model, _ = build("mlp", "all", "zero", 0)
    graph = nir_io.to_nir(model, metadata={"training_method": "tbso"})
    nir.write(tmp_path / "m.nir", graph)
    read = nir.read(tmp_path / "m.nir")
    assert read.metadata["training_method"] == "tbso"
    assert read.metadata["toolkit_version"] == require("bso_deploy").__version__
    assert float(read.metadata["dt"]) == 1e-3 and read.metadata["reset"] == "zero"
    for index in (0, 3, 6):  # BinaryLinear + BatchNorm1d at layers 0, 3, 6
        node = read.nodes[f"affine_{index}"]
        layer, batchnorm = model.layers[index], model.layers[index + 1]
        assert bool(node.metadata["binary"]) and bool(node.metadata["folded_batchnorm"])
        signs, alpha = node.metadata["signs"], node.metadata["alpha"]
        assert signs.dtype == np.int8 and set(np.unique(signs)) <= {-1, 1}
        assert np.all(alpha > 0)
        np.testing.assert_array_equal(node.weight, signs * alpha[:, None])  # exactly +-alpha per row
        flipped = (batchnorm.weight.detach().numpy() < 0)[:, None]
        original = layer.weight.detach().numpy().astype(np.int8)
        np.testing.assert_array_equal(signs, np.where(flipped, -original, original))
        assert flipped.any()
    lif = read.nodes["lif_2"]
    assert lif.metadata["reset"] == "zero" and float(lif.metadata["tau_steps"]) == 2.0
    np.testing.assert_allclose(lif.tau, 2e-3)
    np.testing.assert_array_equal(lif.r * (1e-3 / lif.tau), 1.0)
    np.testing.assert_array_equal(lif.v_leak, 0.0)
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    np.testing.assert_array_equal(lif.v_threshold, 1.0)


def test_conv_nodes_and_shapes(nir, nir_io):
    model, shape = build("vgg", "hidden", "zero", 0)
    graph = nir_io.to_nir(model, input_shape=shape)
    assert list(graph.nodes) == ["input", "conv_0", "lif_2", "avgpool_3", "conv_4", "lif_6", "avgpool_7",
                                 "flatten_8", "affine_9", "output"]
    np.testing.assert_array_equal(graph.nodes["input"].input_type["input"], [2, 8, 8])
    assert tuple(graph.nodes["conv_4"].input_shape) == (4, 4)
    assert graph.nodes["lif_6"].tau.shape == (8, 4, 4)
    assert not graph.nodes["conv_0"].metadata["binary"] and graph.nodes["conv_4"].metadata["binary"]
    flatten = graph.nodes["flatten_8"]
    assert (flatten.start_dim, flatten.end_dim) == (0, -1)
    np.testing.assert_array_equal(flatten.input_type["input"], [8, 2, 2])
    np.testing.assert_array_equal(graph.nodes["output"].output_type["output"], [10])


def test_subtract_reset_warns_and_zero_reset_does_not(nir_io):
    model, _ = build("mlp", "hidden", "subtract", 0)
    with pytest.warns(nir_io.NIRExportWarning, match="subtract"):
        graph = nir_io.to_nir(model)
    assert all(node.metadata["reset"] == "subtract" for node in graph.nodes.values()
               if type(node).__name__ == "LIF")
    model, _ = build("mlp", "hidden", "zero", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nir_io.to_nir(model)
    assert issubclass(nir_io.NIRExportWarning, UserWarning)


def test_pure_nir_consumer_resets_to_zero(nir_io):
    """Without the metadata a subtractive-reset export runs with NIR's reset-to-v_reset: the docs' caveat."""
    model, _ = build("mlp", "hidden", "subtract", 0)
    with pytest.warns(nir_io.NIRExportWarning):
        graph = nir_io.to_nir(model)
    inputs = random_inputs((20,), 0, torch.float32)
    honoured = nir_io.from_nir(graph).record(inputs)
    graph.metadata.pop("reset")
    for node in graph.nodes.values():
        node.metadata.pop("reset", None)
    ignored = nir_io.from_nir(graph).record(inputs)
    assert not torch.equal(honoured["lif_4"], ignored["lif_4"])


def test_export_needs_input_shape_for_conv_networks(nir_io):
    model, _ = build("vgg", "hidden", "zero", 0)
    with pytest.raises(ValueError, match="input_shape"):
        nir_io.to_nir(model)


def test_export_refuses_what_it_cannot_represent(nir_io):
    loose_batchnorm = nn.Sequential(nn.Linear(4, 4), LIF(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"layer 2 \(BatchNorm1d\)"):
        nir_io.to_nir(loose_batchnorm)
    unknown = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"layer 1 \(ReLU\)"):
        nir_io.to_nir(unknown)
    model, _ = build("mlp", "none", "zero", 0)
    with pytest.raises(ValueError, match="'note'"):
        nir_io.to_nir(model, metadata={"note": None})
    with pytest.raises(ValueError, match="dt"):
        nir_io.to_nir(model, dt=0.0)
    with pytest.raises(ValueError, match="rejects"):
        nir_io.to_nir(model, input_shape=(21,))


def test_per_step_batchnorm_exports_its_pooled_statistics(nir_io):
    model = build_mlp((5, 4, 3, 2), batchnorm="per-step", time_steps=3, seed=4)
    model.train()
    torch.manual_seed(5)
    for _ in range(4):  # per-step statistics that differ between the steps
        model(torch.rand(3, 16, 5) * torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1))
    model.eval()
    norm = model.layers[3]
    pooled_mean = norm.step_mean.double().mean(0)
    pooled_var = norm.step_var.double().mean(0) + (norm.step_mean.double() - pooled_mean).pow(2).mean(0)
    assert not torch.allclose(norm.step_mean[0], norm.step_mean[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        graph = nir_io.to_nir(model)
    scale = norm.weight.double() / torch.sqrt(pooled_var + norm.eps)
    expected_bias = norm.bias.double() - scale * pooled_mean
    np.testing.assert_allclose(graph.nodes["affine_2"].bias, expected_bias.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph.nodes["affine_2"].metadata["alpha"], scale.abs().detach().numpy(), rtol=1e-5)
