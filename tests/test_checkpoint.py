"""Bit packing, atomic writes and safe loading of checkpoints."""

import pytest
import torch

from bso_deploy.checkpoint import (
    DATASET_SHAPES,
    CheckpointError,
    checkpoint_config,
    load_checkpoint,
    load_model_payload,
    load_trained_model,
    model_payload,
    model_shape,
    pack_signs,
    save_checkpoint,
    unpack_signs,
)
from bso_deploy.config import TrainConfig
from bso_deploy.io import atomic_write
from bso_deploy.models import build_mlp
from bso_deploy.training import build_network


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (3, 5), (4, 3, 3, 3)])
def test_pack_round_trip_one_bit_per_weight(shape):
    signs = torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(len(shape))).float() * 2 - 1
    bits = pack_signs(signs)
    assert bits.dtype == torch.uint8 and bits.numel() == (signs.numel() + 7) // 8
    assert torch.equal(unpack_signs(bits, list(shape)), signs)


def test_pack_rejects_non_binary():
    with pytest.raises(ValueError, match="not"):
        pack_signs(torch.tensor([1.0, 0.5, -1.0]))


def test_model_payload_round_trip_and_size(tmp_path):
    model = build_mlp((10, 64, 64, 3), seed=1)
    other = build_mlp((10, 64, 64, 3), seed=2)
    path = save_checkpoint(tmp_path / "c.pt", {**model_payload(model), "config": {}, "epoch": 0,
                                               "optimizers": {}, "history": []})
    document = load_checkpoint(path)
    assert document["binary"]["layers.2.weight"]["bits"].numel() == 64 * 64 // 8
    load_model_payload(other, document)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name


def test_load_model_payload_shape_mismatch(tmp_path):
    model = build_mlp((10, 64, 64, 3))
    with pytest.raises(CheckpointError, match=r"missing|shape"):
        load_model_payload(build_mlp((10, 32, 64, 3)), model_payload(model))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def failing(file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="bso-deploy train"):
        load_checkpoint(tmp_path / "none.pt")
    model = build_mlp((4, 8, 8, 2))
    path = save_checkpoint(tmp_path / "c.pt", {**model_payload(model), "config": {}, "epoch": 0,
                                               "optimizers": {}, "history": []})
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a bso-deploy checkpoint"):
        load_checkpoint(foreign)


def test_loading_refuses_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "bso-deploy-checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def _trained_checkpoint(tmp_path, config, input_shape, num_classes, model_info=True):
    model = build_network(config, input_shape, num_classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.fill_(0.5)
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": 3, "optimizers": {}, "history": []}
    if model_info:
        payload["model_info"] = {"input_shape": list(input_shape), "num_classes": num_classes}
    return model, save_checkpoint(tmp_path / "checkpoint.pt", payload)


def test_load_trained_model_rebuilds_the_model_in_eval_mode(tmp_path):
    config = TrainConfig(dataset="nmnist", hidden=(8, 6), seed=2, reset="zero")  # no entry in DATASET_SHAPES
    model, path = _trained_checkpoint(tmp_path, config, (1, 3, 4), 5)  # a shape known only from model_info
    trained = load_trained_model(path)
    assert (trained.config, trained.input_shape, trained.num_classes, trained.epoch) == (config, (1, 3, 4), 5, 3)
    assert not trained.model.training
    for (name, expected), actual in zip(model.state_dict().items(), trained.model.state_dict().values()):
        assert torch.equal(expected, actual), name


def test_without_model_info_the_data_set_gives_the_shape(tmp_path):
    config = TrainConfig(hidden=(8, 6))
    _, path = _trained_checkpoint(tmp_path, config, (64,), 10, model_info=False)
    document = load_checkpoint(path)
    assert checkpoint_config(document) == config
    assert model_shape(document, config) == DATASET_SHAPES["digits"] == ((64,), 10)
    assert load_trained_model(path).input_shape == (64,)
