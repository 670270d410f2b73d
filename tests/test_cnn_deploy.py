"""``--model cnn`` end to end: a tiny conv net (4C3-P2-6C3-P2 on 1x8x8 images) trained for a few steps on
synthetic data with every method, exported to NIR (BatchNorm folded, pooling as average pools whose 1/k^2
the compiler folds into the next synapse), compiled in profile bso, and run with 0 mismatches on the
simulator, the torch reference and Lava (a few samples)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import require, require_lava

from bso_deploy.config import TrainConfig
from bso_deploy.encoding import make_encoder
from bso_deploy.layers import BinaryConv2d
from bso_deploy.training import build_network, make_optimizers, train_epoch

SHAPE = (1, 8, 8)
CLASSES = 3


def synthetic_batches(seed: int, batches: int = 3, batch_size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Images in [0, 1] whose class is the bright quadrant (learnable in a few steps)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        y = torch.randint(0, CLASSES, (batch_size,), generator=generator)
        x = 0.3 * torch.rand(batch_size, *SHAPE, generator=generator)
        for index, label in enumerate(y.tolist()):
            row, col = divmod(label, 2)
            x[index, 0, 4 * row:4 * row + 4, 4 * col:4 * col + 4] += 0.7
        out.append((x, y))
    return out


def trained_cnn(method: str, batchnorm: str = "shared"):
    config = TrainConfig(model="cnn", cnn="4C3-P2-6C3-P2", method=method, time_steps=3, epochs=1, batch_size=8,
                         batchnorm=batchnorm, threshold=0.0 if method != "bptt-ste" else None)
    model = build_network(config, SHAPE, CLASSES)
    before = [layer.weight.clone() for layer in model.layers if isinstance(layer, BinaryConv2d)]
    record = train_epoch(model, synthetic_batches(0), make_encoder("direct"), make_optimizers(model, config), config,
                         CLASSES, 0, torch.device("cpu"), progress=False)
    return model.eval(), record, before


@pytest.mark.parametrize("method", ["tbso", "bso", "bop", "bptt-ste"])
def test_every_method_trains_the_cnn_and_it_deploys_bit_exactly(nir_io, method) -> None:
    parity = require("bso_deploy.hardware.parity")
    model, record, before = trained_cnn(method)
    assert np.isfinite(record["loss"]) and set(record["flips"]) == {"layers.4"}
    if method != "bptt-ste":  # threshold 0: the online optimizers flip at once
        assert record["flips"]["layers.4"] > 0
        assert not torch.equal(before[0], model.layers[4].weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        graph = nir_io.to_nir(model, input_shape=SHAPE)
    kinds = [type(node).__name__ for node in graph.nodes.values()]
    assert kinds == ["Input", "Conv2d", "LIF", "AvgPool2d", "Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine",
                     "Output"]
    assert graph.nodes["conv_4"].metadata["binary"] and graph.nodes["conv_4"].metadata["folded_batchnorm"]
    x, y = synthetic_batches(1, batches=1, batch_size=6)[0]
    inputs = np.repeat(x.numpy()[None], 3, axis=0)
    report = parity.check_parity(graph, inputs=inputs, labels=y.numpy())
    assert report.mismatches == 0 and report.ok and report.compared_spikes > 0
    assert report.profile == "bso"


def test_the_cnn_deploys_on_lava_with_no_mismatch(nir_io) -> None:
    require_lava()
    parity = require("bso_deploy.hardware.parity")
    model, _, _ = trained_cnn("tbso", batchnorm="per-step")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        graph = nir_io.to_nir(model, input_shape=SHAPE)
    x, y = synthetic_batches(2, batches=1, batch_size=2)[0]
    report = parity.check_parity(graph, backends=("sim", "torch", "lava"), inputs=np.repeat(x.numpy()[None], 3, 0),
                                 labels=y.numpy())
    assert report.backends == ("sim", "torch", "lava")
    assert report.mismatches == 0 and report.ok and report.compared_spikes > 0
