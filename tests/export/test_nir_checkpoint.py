"""export_checkpoint_to_nir: checkpoint in, NIR file out (atomically), same graph as to_nir on the model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import require
from torch import nn

from bso_deploy.checkpoint import load_checkpoint, model_payload, save_checkpoint
from bso_deploy.config import TrainConfig
from bso_deploy.training import build_network


@pytest.fixture
def checkpoint(tmp_path):
    """A digits MLP checkpoint with trained-looking BatchNorm statistics."""
    config = TrainConfig(dataset="digits", hidden=(16, 12), reset="zero", method="bso")
    model = build_network(config, (64,), 10)
    generator = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            with torch.no_grad():
                module.running_mean.normal_(0.0, 1.0, generator=generator)
                module.running_var.uniform_(1.0, 4.0, generator=generator)
                module.weight.normal_(0.0, 1.0, generator=generator)
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": 5, "optimizers": {}, "history": []}
    return save_checkpoint(tmp_path / "checkpoint.pt", payload), model.eval()


def test_checkpoint_exports_the_same_graph_as_the_model(nir, nir_io, checkpoint, tmp_path):
    path, model = checkpoint
    out = nir_io.export_checkpoint_to_nir(path, tmp_path / "out" / "model.nir", dt=2e-3)
    assert out == tmp_path / "out" / "model.nir" and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["model.nir"]  # no temporary file left behind
    read = nir.read(out)
    assert read.metadata["training_method"] == "bso" and read.metadata["dataset"] == "digits"
    assert int(read.metadata["checkpoint_epoch"]) == 5 and float(read.metadata["dt"]) == 2e-3
    expected = nir_io.to_nir(model, dt=2e-3)
    assert sorted(read.nodes) == sorted(expected.nodes)  # HDF5 groups come back in alphabetical order
    for name, node in expected.nodes.items():
        for field in ("weight", "bias", "tau", "r", "v_threshold"):
            if hasattr(node, field):
                np.testing.assert_array_equal(getattr(read.nodes[name], field), getattr(node, field))
    inputs = torch.rand(6, 4, 64, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        torch.testing.assert_close(nir_io.from_nir(out)(inputs), model(inputs), rtol=1e-5, atol=1e-5)


def test_missing_checkpoint(nir_io, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        nir_io.export_checkpoint_to_nir(tmp_path / "nothing.pt", tmp_path / "model.nir")


def test_failed_write_keeps_the_previous_file(nir_io, checkpoint, tmp_path, monkeypatch):
    path, _ = checkpoint
    out = nir_io.export_checkpoint_to_nir(path, tmp_path / "model.nir")
    before = out.read_bytes()
    files = require("bso_deploy.export.nir.files")

    def broken_write(filename, graph):
        with open(filename, "wb") as file:
            file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(files.nir, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        nir_io.export_checkpoint_to_nir(path, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "model.nir"]


def test_model_info_overrides_the_dataset_table(nir_io, tmp_path):
    config = TrainConfig(dataset="nmnist", hidden=(8,), reset="subtract")  # no table entry: the shape is model_info's
    model = build_network(config, (1, 4, 4), 3)  # a made-up shape, only known from model_info
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": 0, "optimizers": {}, "history": [],
               "model_info": {"input_shape": [1, 4, 4], "num_classes": 3}}
    path = save_checkpoint(tmp_path / "c.pt", payload)
    assert "model_info" in load_checkpoint(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = nir_io.export_checkpoint_to_nir(path, tmp_path / "m.nir")
    assert any(issubclass(w.category, nir_io.NIRExportWarning) for w in caught)
    module = nir_io.from_nir(out)
    assert module.input_shape == (1, 4, 4) and module.output_shape == (3,)
