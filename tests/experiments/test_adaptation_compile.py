"""The adaptation scenario's compile (bso_deploy/experiments/adaptation.py ``compile_deployed``): a first layer
whose worst-case activation exceeds the 16-bit register at 255 grey levels (as Fashion-MNIST pretrained on
classes 0 - 4 did: 35567) compiles at the first smaller input scale that fits, and other networks keep 255."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from bso_deploy.export.nir import NIRExportWarning, to_nir
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.quantize import quantize_inputs

from bso_deploy.errors import RangeError
from bso_deploy.experiments.adaptation import INPUT_SCALES, compile_deployed
from bso_deploy.layers import BinaryLinear
from bso_deploy.models import build_mlp


def _graph(positive_share: float, seed: int = 0):
    """A 784-16-10 MLP (first layer 8-bit, readout binary) whose first row has ``positive_share`` of its
    weights at +0.5, the rest of the layer small random weights: that row's positive mass sets the bound."""
    model = build_mlp((784, 16, 10), binary="hidden", seed=seed)
    model.layers[-1] = BinaryLinear(16, 10, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        weight = model.layers[0].weight
        weight.copy_(0.02 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed)))
        weight[0, :int(positive_share * 784)] = 0.5
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=NIRExportWarning)
        return to_nir(model.eval())


def test_a_first_layer_beyond_16_bits_compiles_at_a_smaller_input_scale():
    graph = _graph(0.6)
    with pytest.raises(RangeError, match="activation"):
        compile_nir(graph, profile="bso", time_steps=4)
    fx_net = compile_deployed(graph, 4)
    assert fx_net.input_scale < 255 and fx_net.input_scale in INPUT_SCALES
    assert fx_net.quantization[0]["activation_bound"] <= 32767
    larger = INPUT_SCALES[INPUT_SCALES.index(int(fx_net.input_scale)) - 1]  # the scale before it did not fit
    with pytest.raises(RangeError, match="activation"):
        compile_nir(graph, profile="bso", time_steps=4, input_scale=float(larger))
    x = np.random.default_rng(0).random((3, 784)).astype(np.float32)
    assert quantize_inputs(fx_net, x).max() <= fx_net.input_max == int(fx_net.input_scale)


def test_a_network_that_fits_keeps_255_levels():
    fx_net = compile_deployed(_graph(0.05), 4)
    assert fx_net.input_scale == 255
