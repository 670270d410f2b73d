"""bso_deploy.models: which layers each builder makes (types, shapes, binary or not), seeded weights, output
shapes, and the errors for impossible shapes and names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bso_deploy.layers import (
    BinaryConv2d,
    BinaryLinear,
    RunningBatchNorm1d,
    RunningBatchNorm2d,
    StepBatchNorm1d,
    StepBatchNorm2d,
)
from bso_deploy.models import build_cnn, build_mlp, build_model, build_vgg, parse_cnn_spec
from bso_deploy.network import SpikingNetwork
from bso_deploy.neuron import LIF, LIFParameters


def layout(model: SpikingNetwork) -> list[tuple]:
    """(type name, weight shape or None) per layer."""
    return [(type(layer).__name__, tuple(layer.weight.shape) if hasattr(layer, "weight") and
             isinstance(layer, (nn.Linear, nn.Conv2d)) else None) for layer in model.layers]


def test_mlp_hidden_keeps_first_synapse_and_classifier_full_precision():
    model = build_mlp((64, 32, 16, 10))
    assert layout(model) == [("Linear", (32, 64)), ("LIF", None), ("BinaryLinear", (16, 32)),
                             ("BatchNorm1d", None), ("LIF", None), ("Linear", (10, 16))]
    binary = model.layers[2]
    assert binary.bias is None and set(binary.weight.unique().tolist()) == {-1.0, 1.0}


def test_mlp_all_and_none():
    assert [name for name, _ in layout(build_mlp((8, 4, 3), binary="all"))] == [
        "BinaryLinear", "BatchNorm1d", "LIF", "BinaryLinear", "BatchNorm1d"]
    assert [name for name, _ in layout(build_mlp((8, 4, 3), binary="none"))] == ["Linear", "LIF", "Linear"]


def test_mlp_lif_parameters_reach_every_neuron():
    lif = LIFParameters(tau=3.0, threshold=0.5, reset="zero")
    neurons = [layer for layer in build_mlp((8, 6, 5, 2), lif=lif).layers if isinstance(layer, LIF)]
    assert len(neurons) == 2 and all(neuron.params == lif for neuron in neurons)


def test_mlp_weights_follow_the_seed():
    first, again, other = (build_mlp((16, 8, 8, 4), seed=seed) for seed in (3, 3, 4))
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(first.layers[2].weight, other.layers[2].weight)


def test_mlp_step_gives_one_current_per_class():
    model = build_mlp((64, 32, 16, 10)).eval()
    model.reset_state()
    assert model.step(torch.rand(5, 64)).shape == (5, 10)
    assert model(torch.rand(4, 5, 64)).shape == (4, 5, 10)  # (T, batch, classes)


@pytest.mark.parametrize(("sizes", "binary", "message"), [
    ((64,), "hidden", "MLP sizes need at least an input and an output size"),
    ((64, 0, 10), "hidden", "MLP sizes need at least an input and an output size, all >= 1"),
    ((64, 10), "most", "binary must be one of"),
])
def test_mlp_refuses_impossible_sizes_and_choices(sizes, binary, message):
    with pytest.raises(ValueError, match=message):
        build_mlp(sizes, binary=binary)


def test_vgg_blocks_pooling_and_classifier():
    model = build_vgg((3, 8, 8), num_classes=5, channels=(4, "A", 6, "A"))
    assert layout(model) == [("Conv2d", (4, 3, 3, 3)), ("BatchNorm2d", None), ("LIF", None), ("AvgPool2d", None),
                             ("BinaryConv2d", (6, 4, 3, 3)), ("BatchNorm2d", None), ("LIF", None),
                             ("AvgPool2d", None), ("Flatten", None), ("Linear", (5, 6 * 2 * 2))]
    assert model.layers[0].bias is None and model.layers[0].padding == (1, 1)
    model.eval().reset_state()
    assert model.step(torch.rand(2, 3, 8, 8)).shape == (2, 5)


def test_vgg_all_binary_ends_in_a_binary_classifier_with_batchnorm():
    model = build_vgg((1, 4, 4), num_classes=3, channels=(2, "A"), binary="all")
    assert [type(layer) for layer in model.layers] == [BinaryConv2d, nn.BatchNorm2d, LIF, nn.AvgPool2d, nn.Flatten,
                                                       BinaryLinear, nn.BatchNorm1d]


@pytest.mark.parametrize(("shape", "channels", "message"), [
    ((3, 6, 6), (4, "A", 4, "A"), "cannot 2x2-pool a 3x3 feature map"),
    ((3, 8, 8), ("A",), "VGG channels must contain at least one convolution"),
    ((64,), (4,), r"VGG input_shape must be \(channels, height, width\), got \(64,\)"),
])
def test_vgg_refuses_shapes_it_cannot_build(shape, channels, message):
    with pytest.raises(ValueError, match=message):
        build_vgg(shape, channels=channels)


def test_build_model_flattens_image_inputs_for_the_mlp():
    model = build_model("mlp", (1, 4, 4), 3, hidden=(8,))
    assert layout(model)[:2] == [("Flatten", None), ("Linear", (8, 16))]
    model.eval().reset_state()
    assert model.step(torch.rand(2, 1, 4, 4)).shape == (2, 3)
    assert type(build_model("mlp", (64,), 10, hidden=(8,)).layers[0]) is nn.Linear


def test_build_model_vgg_and_unknown_names():
    assert isinstance(build_model("vgg", (3, 32, 32), 10).layers[0], nn.Conv2d)
    with pytest.raises(ValueError, match="unknown model 'resnet'; valid models: mlp, vgg"):
        build_model("resnet", (64,), 10)


def test_cnn_default_spec_for_28x28_and_binary_hidden_convs():
    model = build_model("cnn", (1, 28, 28), 10)
    assert layout(model) == [("Conv2d", (32, 1, 3, 3)), ("BatchNorm2d", None), ("LIF", None), ("AvgPool2d", None),
                             ("BinaryConv2d", (64, 32, 3, 3)), ("BatchNorm2d", None), ("LIF", None),
                             ("AvgPool2d", None), ("Flatten", None), ("Linear", (10, 64 * 7 * 7))]
    assert model.layers[3].kernel_size == 2 and model.layers[4].padding == (1, 1)
    model.eval().reset_state()
    assert model.step(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_spec_string_sets_channels_and_pools():
    assert parse_cnn_spec("32C3-P2-64C3-P2") == (("conv", 32), ("pool", 2), ("conv", 64), ("pool", 2))
    assert parse_cnn_spec(" 8c3 - p4 ") == (("conv", 8), ("pool", 4))
    model = build_cnn((1, 8, 8), 4, "4C3-P2-6C3-8C3-P4", binary="hidden")
    convs = [layer for layer in model.layers if isinstance(layer, nn.Conv2d)]
    assert [type(c).__name__ for c in convs] == ["Conv2d", "BinaryConv2d", "BinaryConv2d"]
    assert [c.out_channels for c in convs] == [4, 6, 8] and model.layers[-1].in_features == 8
    assert [type(layer) for layer in build_cnn((1, 4, 4), 3, "2C3", binary="all").layers][-2:] == [
        BinaryLinear, nn.BatchNorm1d]
    assert build_model("cnn", (8, 8), 3, cnn="2C3-P2").layers[0].in_channels == 1  # (H, W): one channel


@pytest.mark.parametrize(("spec", "message"), [
    ("32C5", "bad CNN block '32C5'"), ("0C3", "bad CNN block '0C3'"), ("P1", "bad CNN block 'P1'"),
    ("32C3--P2", "bad CNN block ''"), ("P2", "has no convolution"),
])
def test_cnn_spec_errors_name_the_bad_block(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_cnn_spec(spec)


def test_cnn_refuses_unpoolable_maps_and_flat_samples():
    with pytest.raises(ValueError, match="cannot 4x4-pool a 6x6 feature map"):
        build_cnn((1, 6, 6), 2, "2C3-P4")
    with pytest.raises(ValueError, match="--model cnn needs image samples"):
        build_model("cnn", (64,), 10)


@pytest.mark.parametrize(("statistics", "types"), [
    ("per-step", (StepBatchNorm1d, StepBatchNorm2d)), ("running", (RunningBatchNorm1d, RunningBatchNorm2d)),
    ("shared", (nn.BatchNorm1d, nn.BatchNorm2d))])
def test_batchnorm_statistics_choose_the_batchnorm_of_every_builder(statistics, types):
    mlp = build_model("mlp", (12,), 3, hidden=(8, 8), batchnorm=statistics, time_steps=3)
    cnn = build_model("cnn", (1, 4, 4), 3, cnn="2C3-3C3", binary="all", batchnorm=statistics, time_steps=3)
    norms = [layer for net in (mlp, cnn) for layer in net.layers if isinstance(layer, nn.modules.batchnorm._BatchNorm)]
    assert [type(layer) for layer in norms] == [types[0], types[1], types[1], types[0]]
