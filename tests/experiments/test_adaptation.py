"""The on-chip adaptation scenario (bso_deploy/experiments/adaptation.py): config validation, the shifts, the error
mapping, flip agreement, and a short run in which on-chip learning improves the shifted accuracy, identically on
the simulator and the torch learner; the scenario on a tiny synthetic Fashion-MNIST (28x28 idx files written
here)."""

from __future__ import annotations

import copy
import gzip

import numpy as np
import pytest
from conftest import require

from bso_deploy.experiments import adaptation
from bso_deploy.experiments.adaptation import AdaptationConfig, image_shape, shift_inputs

TINY = {"hidden": (32,), "train_epochs": 1, "samples": 120, "curve_points": 2, "eval_samples": 200}
PRETRAIN = adaptation._pretrain  # the real one: the module fixture below replaces it with a digits network


@pytest.mark.parametrize(("fields", "match"), [
    ({"shift": "upside-down"}, "shift"), ({"variant": "adam"}, "variant"), ({"samples": 0}, "samples"),
    ({"hidden": ()}, "hidden"), ({"hidden": (0,)}, "hidden"), ({"threshold": -1.0}, "threshold"),
    ({"momentum": 1.0}, "momentum"), ({"backend": ""}, "backend"), ({"dataset": "mnist"}, "dataset"),
    ({"rounding": "up"}, "rounding"), ({"passes": True}, "passes"), ({"error_target": 0.0}, "error_target"),
    ({"pretrain_classes": -1}, "pretrain_classes"),
])
def test_config_validation_names_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        AdaptationConfig(**fields)


def test_config_round_trip():
    config = AdaptationConfig(shift="shift", hidden=[16, 8], variant="bso", backend="torch")
    assert config.hidden == (16, 8)
    assert AdaptationConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        AdaptationConfig.from_dict({**config.to_dict(), "lr": 0.1})


def test_shifts():
    x = np.random.default_rng(0).random((3, 64)).astype(np.float32)
    np.testing.assert_allclose(shift_inputs(x, "invert"), 1 - x)
    moved = shift_inputs(x, "shift").reshape(3, 8, 8)
    np.testing.assert_array_equal(moved[:, 1:, 2:], x.reshape(3, 8, 8)[:, :-1, :-2])
    assert not moved[:, 0].any() and not moved[:, :, :2].any()
    np.testing.assert_array_equal(shift_inputs(x, "none"), x)
    images = np.random.default_rng(1).random((2, 28 * 28)).astype(np.float32)
    moved = shift_inputs(images, "shift", (28, 28)).reshape(2, 28, 28)
    np.testing.assert_array_equal(moved[:, 1:, 2:], images.reshape(2, 28, 28)[:, :-1, :-2])


def test_image_shape():
    assert image_shape((64,)) == (8, 8) and image_shape((1, 28, 28)) == (28, 28) and image_shape((5, 7)) == (5, 7)
    with pytest.raises(ValueError, match="square"):
        image_shape((10,))


@pytest.mark.parametrize("k_scale", [296.0, 3.0, 0.5, 1024.0, 7 * 2.0 ** -3])
def test_error_mapping_is_exact(k_scale: float):
    """c = 64 K y for integer y: c >> error_shift must be E y exactly (docs/onchip-learning.md §9)."""
    shift, target, bits, scale = adaptation._error_mapping(k_scale, 8.0)
    assert scale.is_integer() and 2 * target <= (1 << (bits - 1)) - 1
    y = np.arange(-300, 301)
    current = (64 * k_scale * y).astype(np.int64)
    np.testing.assert_array_equal(current >> shift, (scale * y).astype(np.int64))


def test_flip_agreement():
    a = np.array([[0, 1, 2, 3], [1, 1, 0, 0], [2, 2, 1, 1]])
    b = np.array([[0, 1, 2, 3], [1, 1, 0, 0]])
    f1, precision, recall = adaptation._flip_agreement(a, b)
    assert (precision, recall) == (2 / 3, 1.0) and f1 == pytest.approx(0.8)
    assert adaptation._flip_agreement(np.zeros((0, 4)), np.zeros((0, 4))) == (1.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def pretrained():
    """One short pretraining for the module; run_adaptation is driven unchanged, with this network."""
    require("nir")
    config = AdaptationConfig(**TINY)
    result = adaptation._pretrain(config, progress=False)
    patch = pytest.MonkeyPatch()
    patch.setattr(adaptation, "_pretrain", lambda config, progress: copy.deepcopy(result))
    yield result
    patch.undo()


def test_short_adaptation_improves_accuracy_identically_on_sim_and_torch(pretrained):
    result = adaptation.run_adaptation(AdaptationConfig(**TINY), progress=False)
    data = result.to_dict()
    for key in ("accuracy_before", "accuracy_after", "float_accuracy_after", "flip_agreement", "flip_precision",
                "flip_recall", "bits_per_synapse", "backend", "curve", "rule"):
        assert key in data
    assert data["backend"] == "sim" and data["bits_per_synapse"] == 17 and data["float_bits_per_synapse"] == 33
    assert data["accuracy_after"] > data["accuracy_before"] + 0.1
    assert data["float_accuracy_after"] > data["float_accuracy_before"]
    assert data["flip_agreement"] > 0.9 and data["flips"] > 0  # the integer rule tracks the float one
    assert [point["samples"] for point in data["curve"]] == [0, 60, 120]
    on_torch = adaptation.run_adaptation(AdaptationConfig(**TINY, backend="torch"), progress=False).to_dict()
    for key in ("accuracy_after", "flips", "flip_agreement", "sign_agreement", "curve"):
        assert on_torch[key] == data[key], key
    with pytest.raises(ValueError, match="valid"):
        adaptation.run_adaptation(AdaptationConfig(**TINY, backend="fpga"), progress=False)


def write_synthetic_fashion_mnist(folder, train: int = 1000, test: int = 100, seed: int = 0) -> None:
    """Debian's layout of Fashion-MNIST (four gzipped idx files in one folder), with made-up 28x28 images:
    each class a fixed random pattern of bright pixels (a tenth of them) over uniform noise."""
    rng = np.random.default_rng(seed)
    templates = (rng.random((10, 28, 28)) < 0.1) * 200
    for prefix, count in (("train", train), ("t10k", test)):
        labels = np.arange(count, dtype=np.uint8) % 10
        images = (templates[labels] + rng.integers(0, 56, size=(count, 28, 28))).astype(np.uint8)
        for name, array, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
            header = np.array([magic, *array.shape], dtype=">u4").tobytes()
            (folder / f"{prefix}-{name}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))


def test_fashion_mnist_scenario_on_28x28_idx_files(tmp_path, monkeypatch):
    """The whole scenario on Fashion-MNIST's files (a tiny synthetic set in $BSO_DATA): a 784-input MLP is
    trained, deployed and adapts on chip, on every test image."""
    require("nir")
    write_synthetic_fashion_mnist(tmp_path)
    monkeypatch.setenv("BSO_DATA", str(tmp_path))
    config = AdaptationConfig(dataset="fashion-mnist", hidden=(32,), train_epochs=3, samples=150, curve_points=2)
    model, split = PRETRAIN(config, progress=False)
    assert split.input_shape == (1, 28, 28) and len(split.train) == 1000
    assert model.layers[0].in_features == 28 * 28 and model.layers[-1].out_features == 10
    monkeypatch.setattr(adaptation, "_pretrain", lambda config, progress: (model, split))
    result = adaptation.run_adaptation(config, progress=False)
    assert result.details["test_samples"] == 100 and result.details["stream_samples"] == 150
    assert result.accuracy_unshifted >= 0.9  # the patterns are easy: the deployed network has learned them
    assert result.accuracy_after > result.accuracy_before + 0.1
    assert result.flip_agreement > 0.8 and result.flips > 0  # 0.89 here; the digits test asks 0.9
