"""Tests for bso_deploy.data: digits split, local MNIST / Fashion-MNIST (torchvision's and Debian's layouts,
plain and gzipped idx files, the system folder) and CIFAR-10 readers on fake files, loaders. The idx reader
itself: tests/test_idx_files.py."""

from __future__ import annotations

import ast
import collections
import gzip
import itertools
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from bso_deploy import data, encoding
from bso_deploy.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    DatasetSplit,
    load_dataset,
    make_loaders,
)
from bso_deploy.extras import MissingExtraError

DIGITS_COUNT = 1797


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[index] for index in range(len(dataset))))
    return torch.stack(images), torch.stack(labels)


# ---------------------------------------------------------------- registry


def test_dataset_names_are_exactly_the_documented_ones():
    assert set(DATASETS) == {"digits", "mnist", "fashion-mnist", "cifar10"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'") as error:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(error.value)


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                                         (True, TypeError)])
def test_bad_seed_rejected(seed, error):
    with pytest.raises(error, match="seed"):
        load_dataset("digits", seed=seed)


def test_root_defaults_to_env_var_then_data(monkeypatch, tmp_path):
    monkeypatch.setenv("BSO_DATA", str(tmp_path))
    assert data.resolve_root(None) == tmp_path
    assert data.resolve_root("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("BSO_DATA")
    assert data.resolve_root(None) == Path("data")


@pytest.mark.parametrize("module", [data, encoding], ids=["data", "encoding"])
def test_module_level_imports_avoid_torchvision_and_sklearn(module):
    """The training core must import without torchvision; both are imported inside the loaders."""
    tree = ast.parse(Path(module.__file__).read_text())
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.add(node.module.split(".")[0])
    assert "torch" in top_level  # the parse found the imports at all
    assert not top_level & {"torchvision", "sklearn"}


def test_split_validates_its_fields():
    dataset = TensorDataset(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="input_shape"):
        DatasetSplit(dataset, dataset, input_shape=(0,), num_classes=2, name="x")
    with pytest.raises(ValueError, match="num_classes"):
        DatasetSplit(dataset, dataset, input_shape=(3,), num_classes=1, name="x")
    with pytest.raises(TypeError, match="train"):
        DatasetSplit([1, 2], dataset, input_shape=(3,), num_classes=2, name="x")


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return load_dataset("digits", seed=0)


def test_digits_shapes_values_and_labels(digits):
    assert digits.input_shape == (64,) and digits.num_classes == 10 and digits.name == "digits"
    train_x, train_y = digits.train.tensors
    test_x, test_y = digits.test.tensors
    assert len(digits.test) == 450 and len(digits.train) == DIGITS_COUNT - 450
    assert train_x.shape == (len(digits.train), 64) and test_x.shape == (450, 64)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    everything = torch.cat([train_x, test_x])
    assert everything.min() == 0.0 and everything.max() == 1.0
    # 0..16 divided by 16: every value a multiple of 1/16.
    assert torch.equal(everything * 16, torch.round(everything * 16))
    assert set(torch.cat([train_y, test_y]).tolist()) == set(range(10))


def test_digits_split_partitions_the_data(digits):
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    expected = collections.Counter((row.astype(np.float32) / 16).tobytes() + bytes([label])
                                   for row, label in zip(features, labels))
    found = collections.Counter()
    for part in (digits.train, digits.test):
        x, y = part.tensors
        found.update(row.numpy().tobytes() + bytes([label]) for row, label in zip(x, y.tolist()))
    assert found == expected


def test_digits_split_is_stratified(digits):
    train_counts = torch.bincount(digits.train.tensors[1], minlength=10)
    test_counts = torch.bincount(digits.test.tensors[1], minlength=10)
    for train_count, test_count in zip(train_counts.tolist(), test_counts.tolist()):
        total = train_count + test_count
        assert abs(test_count / total - data.DIGITS_TEST_FRACTION) <= 1.0 / total


def test_digits_split_is_deterministic_per_seed(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    for first, second in zip(digits.test.tensors, again.test.tensors):
        assert torch.equal(first, second)
    assert torch.equal(digits.train.tensors[0], again.train.tensors[0])
    assert not torch.equal(digits.test.tensors[0], other.test.tensors[0])


# ---------------------------------------------------------------- MNIST layout (fake idx files)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Big-endian idx: magic 2051 (uint8, 3 dims) for images, 2049 (uint8, 1 dim) for labels; gzipped when
    the name ends in .gz."""
    magic = 2051 if array.ndim == 3 else 2049
    content = np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)


def _fake_mnist(root: Path, folder: str | None, counts=(7, 4), suffix: str = "",
                raw: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four idx files in `root/folder/raw` (torchvision's layout), `root/folder` (raw=False) or `root`
    (folder None: Debian's layout, as /usr/share/datasets/fashion-mnist), each name + `suffix` (".gz")."""
    directory = root if folder is None else root / folder / ("raw" if raw else "")
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    written = {}
    for prefix, count in zip(("train", "t10k"), counts):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 27, 27] = 0, 255
        labels = np.arange(count, dtype=np.uint8) % 10
        _write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        written[prefix] = (images, labels)
    return written


def _assert_split_holds(split: DatasetSplit, written: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Exactly the pixels and labels written, as uint8 in memory and as float samples pixel / 255."""
    for dataset, prefix in ((split.train, "train"), (split.test, "t10k")):
        expected_images, expected_labels = written[prefix]
        np.testing.assert_array_equal(dataset.images.numpy(), expected_images[:, None])
        images, labels = _stack(dataset)
        assert torch.equal(images, torch.from_numpy(expected_images).unsqueeze(1).float() / 255)
        assert labels.tolist() == expected_labels.tolist()


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_layout_is_read(tmp_path, name, folder):
    written = _fake_mnist(tmp_path, folder)
    split = load_dataset(name, root=tmp_path)
    assert split.input_shape == (1, 28, 28) and split.num_classes == 10 and split.name == name
    for dataset, prefix in ((split.train, "train"), (split.test, "t10k")):
        images, labels = _stack(dataset)
        expected_images, expected_labels = written[prefix]
        assert images.shape == (len(expected_labels), 1, 28, 28) and images.dtype == torch.float32
        assert labels.dtype == torch.int64
        assert torch.equal(images, torch.from_numpy(expected_images).unsqueeze(1).float() / 255)
        assert labels.tolist() == expected_labels.tolist()
        assert images[0, 0, 0, 0] == 0.0 and images[0, 0, 27, 27] == 1.0


def test_mnist_root_from_env(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, "MNIST", counts=(3, 2))
    monkeypatch.setenv("BSO_DATA", str(tmp_path))
    assert len(load_dataset("mnist").train) == 3


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_missing_files_named(tmp_path, name, folder):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(name, root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / folder / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "copy" in message


@pytest.mark.parametrize("layout", ["debian", "debian-raw", "torchvision-gz", "folder"])
def test_gzipped_and_debian_layouts_are_read_exactly(tmp_path, layout):
    """Debian's gzipped files in the folder given or its raw/, torchvision's raw/ gzipped, or plain files
    in the folder given."""
    if layout == "debian":
        written = _fake_mnist(tmp_path, None, suffix=".gz")
    elif layout == "debian-raw":
        written = _fake_mnist(tmp_path, "raw", suffix=".gz", raw=False)
    elif layout == "torchvision-gz":
        written = _fake_mnist(tmp_path, "FashionMNIST", suffix=".gz")
    else:
        written = _fake_mnist(tmp_path / "FashionMNIST", None)
        tmp_path = tmp_path / "FashionMNIST"
    split = load_dataset("fashion-mnist", root=tmp_path)
    assert split.input_shape == (1, 28, 28) and split.name == "fashion-mnist"
    _assert_split_holds(split, written)


def test_plain_and_gzipped_files_mix_in_one_folder(tmp_path):
    written = _fake_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", written["t10k"][1])
    _assert_split_holds(load_dataset("mnist", root=tmp_path), written)


def test_a_gz_name_on_plain_bytes_is_a_clear_error(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").rename(raw / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz is not a valid gzip file.*rename it"):
        load_dataset("mnist", root=tmp_path)


def _point_system_folder(monkeypatch, tmp_path) -> Path:
    """SYSTEM_DATA_DIR at a folder of the test, no $BSO_DATA, and a working directory without ./data."""
    system = tmp_path / "system"
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", system)
    monkeypatch.delenv("BSO_DATA", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return system


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_with_no_root_the_system_folder_is_searched(monkeypatch, tmp_path, name):
    system = _point_system_folder(monkeypatch, tmp_path)
    written = _fake_mnist(system / name, None, suffix=".gz")
    assert data.data_roots(name, None) == (Path("data"), system / name)
    _assert_split_holds(load_dataset(name), written)


def test_a_root_or_bso_data_replaces_the_system_folder(monkeypatch, tmp_path):
    system = _point_system_folder(monkeypatch, tmp_path)
    _fake_mnist(system / "fashion-mnist", None, suffix=".gz")
    assert data.data_roots("fashion-mnist", tmp_path) == (tmp_path,)
    assert data.data_roots("cifar10", None) == (Path("data"),)
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found"):
        load_dataset("fashion-mnist", root=tmp_path / "cwd")
    monkeypatch.setenv("BSO_DATA", str(tmp_path / "cwd"))
    assert data.data_roots("fashion-mnist", None) == (tmp_path / "cwd",)
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found"):
        load_dataset("fashion-mnist")


def test_missing_fashion_mnist_says_how_to_get_it(monkeypatch, tmp_path):
    system = _point_system_folder(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("fashion-mnist")
    message = str(error.value)
    assert "\n" not in message and "apt-get install dataset-fashion-mnist" in message
    assert str(system / "fashion-mnist") in message and str(Path("data") / "FashionMNIST" / "raw") in message


@pytest.mark.parametrize("damage", ["truncated-gz", "magic", "count"])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, damage):
    written = _fake_mnist(tmp_path, None, suffix=".gz")
    labels_path = tmp_path / "train-labels-idx1-ubyte.gz"
    if damage == "truncated-gz":
        labels_path.write_bytes(labels_path.read_bytes()[:-6])
    elif damage == "magic":
        _write_idx(labels_path, written["train"][0])  # images where the labels belong
    else:
        _write_idx(labels_path, written["train"][1][:-1])
    with pytest.raises(ValueError) as error:
        load_dataset("fashion-mnist", root=tmp_path)
    message = str(error.value)
    assert str(labels_path) in message and "\n" not in message
    assert "apt-get install --reinstall dataset-fashion-mnist" in message


def test_mnist_bad_labels_rejected(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    _write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.full(7, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels .* \[0, 10\)"):
        load_dataset("mnist", root=tmp_path)


# ---------------------------------------------------------------- CIFAR-10 layout (fake pickles)


def _fake_cifar10(root: Path, per_batch: int = 2, test_count: int = 3) -> dict[str, tuple[np.ndarray, list]]:
    """Batches as in the real "python version": dicts with b'data' (N, 3072) uint8 and b'labels'."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(11)
    written = {}
    names = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
    for index, file_name in enumerate(names):
        count = test_count if file_name == "test_batch" else per_batch
        pixels = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [(index + row) % 10 for row in range(count)]
        entry = {b"batch_label": file_name.encode(), b"data": pixels, b"labels": labels,
                 b"filenames": [b"x.png"] * count}
        (folder / file_name).write_bytes(pickle.dumps(entry))
        written[file_name] = (pixels, labels)
    label_names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
                   b"truck"]
    meta = {b"label_names": label_names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return written


def test_cifar10_layout_is_read(tmp_path):
    written = _fake_cifar10(tmp_path)
    split = load_dataset("cifar10", root=tmp_path)
    assert split.input_shape == (3, 32, 32) and split.num_classes == 10 and split.name == "cifar10"
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)

    train_images, train_labels = _stack(split.train)
    assert train_images.shape == (10, 3, 32, 32) and train_images.dtype == torch.float32
    pixels = np.concatenate([written[f"data_batch_{index}"][0] for index in range(1, 6)])
    labels = list(itertools.chain.from_iterable(written[f"data_batch_{index}"][1] for index in range(1, 6)))
    assert train_labels.tolist() == labels  # batches 1..5 in order
    expected = torch.from_numpy(pixels).float().view(10, 3, 32, 32) / 255
    assert torch.allclose(train_images, (expected - mean) / std, rtol=0, atol=1e-6)

    # One pixel by hand: row layout is the R plane, then G, then B, each 32x32 row-major.
    channel, row, column = 1, 2, 5
    value = int(pixels[0, 1024 * channel + 32 * row + column])
    hand = (value / 255 - CIFAR10_MEAN[channel]) / CIFAR10_STD[channel]
    assert train_images[0, channel, row, column].item() == pytest.approx(hand, abs=1e-6)

    test_images, test_labels = _stack(split.test)
    assert test_images.shape == (3, 3, 32, 32)
    assert test_labels.tolist() == written["test_batch"][1]


def test_cifar10_missing_file_named(tmp_path):
    _fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("cifar10", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "missing in" in message and "data_batch_3" in message and "batches.meta" in message


def test_cifar10_corrupt_batch_rejected(tmp_path):
    _fake_cifar10(tmp_path)
    entry = {b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(entry))
    with pytest.raises(ValueError, match=r"test_batch.*3072"):
        load_dataset("cifar10", root=tmp_path)


# ---------------------------------------------------------------- loaders


def _epoch_labels(loader) -> list[int]:
    return torch.cat([labels for _, labels in loader]).tolist()


def test_loaders_same_seed_same_order(digits):
    first_train, first_test = make_loaders(digits, batch_size=100, seed=3, drop_last=False)
    second_train, _ = make_loaders(digits, batch_size=100, seed=3, drop_last=False)
    other_train, _ = make_loaders(digits, batch_size=100, seed=4, drop_last=False)

    first_epochs = [_epoch_labels(first_train) for _ in range(2)]
    second_epochs = [_epoch_labels(second_train) for _ in range(2)]
    assert first_epochs == second_epochs
    assert first_epochs[0] != first_epochs[1]  # reshuffled each epoch
    assert _epoch_labels(other_train) != first_epochs[0]
    assert sorted(first_epochs[0]) == sorted(digits.train.tensors[1].tolist())

    assert _epoch_labels(first_test) == digits.test.tensors[1].tolist()  # test order untouched
    images, labels = next(iter(first_train))
    assert images.shape == (100, 64) and labels.shape == (100,)


def test_loaders_with_workers_are_seeded_and_persistent():
    dataset = TensorDataset(torch.arange(40, dtype=torch.float32).view(40, 1), torch.arange(40))
    split = DatasetSplit(dataset, dataset, input_shape=(1,), num_classes=40, name="toy")
    train, test = make_loaders(split, batch_size=8, seed=9, num_workers=2)
    assert train.persistent_workers and test.persistent_workers and not train.pin_memory
    reference, _ = make_loaders(split, batch_size=8, seed=9)
    assert _epoch_labels(train) == _epoch_labels(reference)


@pytest.mark.parametrize("kwargs, error", [({"batch_size": 0}, ValueError), ({"batch_size": 2.0}, TypeError),
                                           ({"seed": -1}, ValueError), ({"num_workers": -1}, ValueError)])
def test_loaders_reject_bad_arguments(digits, kwargs, error):
    arguments = {"batch_size": 4, "seed": 0, **kwargs}
    with pytest.raises(error):
        make_loaders(digits, **arguments)


def test_train_loader_drops_incomplete_last_batch(digits):
    train, _ = make_loaders(digits, batch_size=100, seed=0)
    sizes = [len(labels) for _, labels in train]
    assert sizes == [100] * (len(digits.train) // 100)


def test_digits_arrays_are_the_counts_scikit_learn_ships():
    features, labels = data.load_digits_arrays()
    assert features.shape == (DIGITS_COUNT, 64) and labels.shape == (DIGITS_COUNT,) and labels.dtype == np.int64
    assert features.min() == 0 and features.max() == data.DIGITS_MAX_VALUE
    np.testing.assert_array_equal(np.bincount(labels)[[0, 9]], [178, 180])


def test_digits_without_scikit_learn_name_the_extra(monkeypatch):
    for name in ["sklearn", *(name for name in sys.modules if name.startswith("sklearn."))]:
        monkeypatch.setitem(sys.modules, name, None)  # scikit-learn absent: importing it or its parts fails
    with pytest.raises(MissingExtraError) as caught:
        load_dataset("digits", seed=0)
    assert str(caught.value) == "the digits data set needs scikit-learn: pip install 'bso-deploy[digits]'"
    assert isinstance(caught.value, ImportError) and caught.value.extra == "digits"
    assert caught.value.name == "scikit-learn"
