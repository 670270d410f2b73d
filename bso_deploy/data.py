"""Data sets for training and evaluation: one loader per name, all returning a `DatasetSplit`.

Nothing is ever downloaded. "digits" ships with scikit-learn; MNIST, Fashion-MNIST and CIFAR-10 are read
from local files under a root directory (argument `root`, else the environment variable `BSO_DATA`, else
`./data`). MNIST and Fashion-MNIST are the four idx files `{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
each plain or gzipped (`.gz`), all in one folder: `<root>/MNIST/raw/` or `<root>/FashionMNIST/raw/` (as
torchvision lays them out), `<root>/` itself, or `<root>/raw/`; when neither `root` nor `BSO_DATA` is given,
also `SYSTEM_DATA_DIR/<name>/` (`/usr/share/datasets/fashion-mnist/` is where Debian's package
`dataset-fashion-mnist` puts them). They are read by `bso_deploy.idx_files`. CIFAR-10 is torchvision's
"python version":

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}

Every sample is `(image, label)`: `image` a float32 tensor of shape `DatasetSplit.input_shape`, `label` a
0-dim int64 tensor in `[0, num_classes)`. Pixel values are scaled to [0, 1]; CIFAR-10 is further
normalized per channel with `CIFAR10_MEAN` / `CIFAR10_STD`, so its values are not in [0, 1] (rate coding
clamps them; see `bso_deploy.encoding`).

scikit-learn is imported inside the digits loaders only, so the training core imports without it; without
scikit-learn (the ``digits`` extra) the digits loaders raise :class:`~bso_deploy.extras.MissingExtraError`.
"""

from __future__ import annotations

import operator
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .event_data import EVENT_LAYOUTS, load_event_data
from .extras import MissingExtraError
from .idx_files import IDX_DATASETS, find_idx_files, read_labelled_images

ROOT_ENV_VAR = "BSO_DATA"
DEFAULT_ROOT = "data"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
"""Where Debian's data set packages install (``dataset-fashion-mnist``: ``fashion-mnist/*-ubyte.gz``); searched
when neither ``root`` nor ``$BSO_DATA`` is given."""

DIGITS_TEST_FRACTION = 0.25
"""Share of scikit-learn's 1797 digits held out for testing (450 samples; the other 1347 train)."""
DIGITS_MAX_VALUE = 16.0
"""Largest pixel value in scikit-learn's digits (4-bit counts 0..16); dividing by it maps to [0, 1]."""

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel (R, G, B) mean of the CIFAR-10 training images after scaling to [0, 1]."""
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel standard deviation of the CIFAR-10 training pixels after scaling to [0, 1]."""



CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
_CIFAR10_IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class DatasetSplit:
    """A train/test pair of data sets with what a model needs to know about them.

    Attributes:
        train, test: map-style data sets of `(image, label)` samples (see the module docstring).
        input_shape: shape of one image, e.g. `(64,)` for digits, `(1, 28, 28)` for MNIST.
        num_classes: labels lie in `[0, num_classes)`.
        name: the key of `DATASETS` that produced this split.
    """

    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        for field_name in ("train", "test"):
            if not isinstance(getattr(self, field_name), Dataset):
                raise TypeError(f"DatasetSplit.{field_name} must be a torch Dataset, "
                                f"got {type(getattr(self, field_name)).__name__}")
        if not isinstance(self.input_shape, tuple) or not self.input_shape or not all(
            isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in self.input_shape
        ):
            raise ValueError(f"DatasetSplit.input_shape must be a non-empty tuple of positive ints, "
                             f"got {self.input_shape!r}")
        num_classes = self.num_classes
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"DatasetSplit.num_classes must be an int >= 2, got {self.num_classes!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"DatasetSplit.name must be a non-empty string, got {self.name!r}")


class ImageTensorDataset(Dataset):
    """uint8 images held in memory, converted to float one sample at a time (as DataLoader workers ask).

    Keeping uint8 costs a quarter of the memory of float32 (CIFAR-10 train: 150 MB instead of 600 MB).

    Args:
        images: uint8 tensor of shape (N, C, H, W), pixel values 0..255.
        labels: int64 tensor of shape (N,).
        mean, std: optional per-channel constants (length C); when given, sample = (pixel / 255 - mean) / std.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor of shape (N, C, H, W), "
                             f"got {images.dtype} of shape {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be an int64 tensor of shape ({images.shape[0]},), "
                             f"got {labels.dtype} of shape {tuple(labels.shape)}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.images = images
        self.labels = labels
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].to(torch.float32) / 255.0
        if self.mean is not None:
            image = (image - self.mean) / self.std
        return image, self.labels[index]


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The data root: `root` when given, else `$BSO_DATA`, else `./data` (relative to the working dir)."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT)


def data_roots(name: str, root: str | os.PathLike | None) -> tuple[Path, ...]:
    """The roots searched for data set `name`: `resolve_root(root)`, then, when neither `root` nor `$BSO_DATA`
    is given and `name` has a system folder (:data:`IDX_DATASETS`), `SYSTEM_DATA_DIR / <system_folder>`."""
    roots = [resolve_root(root)]
    if root is None and not os.environ.get(ROOT_ENV_VAR) and name in IDX_DATASETS:
        roots.append(SYSTEM_DATA_DIR / IDX_DATASETS[name].system_folder)
    return tuple(roots)


def _require_files(directory: Path, file_names: tuple[str, ...], source: str) -> None:
    """Raise FileNotFoundError naming `directory` and every expected file unless all are present."""
    missing = [name for name in file_names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"data set files missing in {directory}: {', '.join(missing)}. Expected there: "
            f"{', '.join(file_names)}. Nothing is downloaded: copy the files from {source} into {directory} "
            f"(or pass root=... / set ${ROOT_ENV_VAR} to the directory that holds them)."
        )


def _check_labels(labels: torch.Tensor, num_classes: int, where: Path) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels in {where} must lie in [0, {num_classes}), found "
                         f"[{int(labels.min())}, {int(labels.max())}]: "
                         "the files are corrupt or hold another data set")


def _digits_tools() -> tuple[Callable, Callable]:
    """scikit-learn's ``load_digits`` and ``train_test_split``; MissingExtraError without scikit-learn."""
    try:  # optional (extra "digits"): only the digits data set needs scikit-learn
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise MissingExtraError("the digits data set", "scikit-learn", "digits") from error
    return load_digits, train_test_split


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as they ship: (pixel counts (1797, 64) float64 in 0..16, labels (1797,)
    int64)."""
    load_digits, _ = _digits_tools()
    features, labels = load_digits(return_X_y=True)
    return features, labels.astype(np.int64)


def load_digits_split(roots: tuple[Path, ...], seed: int) -> DatasetSplit:
    """scikit-learn's 8x8 digits, flattened to (64,) in [0, 1], split 75/25 stratified by class.

    `roots` is unused (the data ship with scikit-learn). `seed` is `random_state` of `train_test_split`: the
    same seed gives the same split.
    """
    _, train_test_split = _digits_tools()
    features, labels = load_digits_arrays()
    features = (features / DIGITS_MAX_VALUE).astype(np.float32)
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=seed
    )
    return DatasetSplit(
        train=TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y)),
        test=TensorDataset(torch.from_numpy(test_x), torch.from_numpy(test_y)),
        input_shape=(features.shape[1],),
        num_classes=10,
        name="digits",
    )


def _load_idx_split(name: str, roots: tuple[Path, ...]) -> DatasetSplit:
    """Data set `name` of :data:`IDX_DATASETS`, (1, H, W) in [0, 1], from the first folder holding its files."""
    dataset = IDX_DATASETS[name]
    files = find_idx_files(dataset, roots)
    parts = []
    for prefix in ("train", "t10k"):
        images, labels = read_labelled_images(files[f"{prefix}-images-idx3-ubyte"],
                                              files[f"{prefix}-labels-idx1-ubyte"], 10, dataset.remedy)
        parts.append(ImageTensorDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels)))
    train_set, test_set = parts
    if train_set.images.shape[1:] != test_set.images.shape[1:]:
        raise ValueError(f"{dataset.title}'s training images ({files['train-images-idx3-ubyte']}) are "
                         f"{tuple(train_set.images.shape[2:])} pixels but its test images "
                         f"({files['t10k-images-idx3-ubyte']}) {tuple(test_set.images.shape[2:])}: the files "
                         f"come from different data sets; {dataset.remedy}")
    return DatasetSplit(train=train_set, test=test_set, input_shape=tuple(train_set.images.shape[1:]),
                        num_classes=10, name=name)


def load_mnist_split(roots: tuple[Path, ...], seed: int) -> DatasetSplit:
    """MNIST, (1, 28, 28) in [0, 1]; the official 60000/10000 split (`seed` is unused)."""
    return _load_idx_split("mnist", roots)


def load_fashion_mnist_split(roots: tuple[Path, ...], seed: int) -> DatasetSplit:
    """Fashion-MNIST, (1, 28, 28) in [0, 1]; the official 60000/10000 split (`seed` is unused)."""
    return _load_idx_split("fashion-mnist", roots)


def _read_cifar10_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled CIFAR-10 batch -> uint8 images (N, 3, 32, 32) and int64 labels (N,).

    The file is a pickled dict: `data` a uint8 array (N, 3072), each row the R, G then B planes of 32x32
    pixels in row-major order, and `labels` a list of N ints. Keys are bytes or str depending on the Python
    that wrote it; both are accepted. Unpickling runs code from the file: use trusted files only.
    """
    with path.open("rb") as handle:
        entry = pickle.load(handle, encoding="latin1")  # latin1 reads NumPy arrays pickled by Python 2
    if not isinstance(entry, dict):
        raise ValueError(f"{path} must hold a pickled dict, got {type(entry).__name__}")
    data = entry.get("data", entry.get(b"data"))
    labels = entry.get("labels", entry.get(b"labels"))
    pixels_per_image = int(np.prod(_CIFAR10_IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != pixels_per_image:
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {pixels_per_image}); "
                         "the file is corrupt or not a CIFAR-10 python batch")
    if labels is None or len(labels) != data.shape[0]:
        raise ValueError(f"{path}: 'labels' must list one label per image ({data.shape[0]})")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, *_CIFAR10_IMAGE_SHAPE).copy())
    return images, torch.as_tensor(np.asarray(labels, dtype=np.int64))


def load_cifar10_split(roots: tuple[Path, ...], seed: int) -> DatasetSplit:
    """CIFAR-10, (3, 32, 32) normalized per channel; the official 50000/10000 split (`seed` is unused).

    Read directly from the pickled batches rather than through `torchvision.datasets.CIFAR10`, which
    insists on the official MD5 of every file; the structure of each batch is checked instead.
    """
    directory = roots[0] / CIFAR10_FOLDER  # CIFAR-10 has no system folder: `data_roots` gives one root
    _require_files(directory, (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE),
                   "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extracted)")
    parts = []
    for file_names in (CIFAR10_TRAIN_FILES, (CIFAR10_TEST_FILE,)):
        batches = [_read_cifar10_batch(directory / file_name) for file_name in file_names]
        images = torch.cat([images for images, _ in batches])
        labels = torch.cat([labels for _, labels in batches])
        _check_labels(labels, 10, directory)
        parts.append(ImageTensorDataset(images, labels, mean=CIFAR10_MEAN, std=CIFAR10_STD))
    return DatasetSplit(train=parts[0], test=parts[1], input_shape=_CIFAR10_IMAGE_SHAPE, num_classes=10,
                        name="cifar10")


DATASETS: Mapping[str, Callable[[tuple[Path, ...], int], DatasetSplit]] = MappingProxyType({
    "digits": load_digits_split,
    "mnist": load_mnist_split,
    "fashion-mnist": load_fashion_mnist_split,
    "cifar10": load_cifar10_split,
})
"""Data set name -> loader `(roots, seed) -> DatasetSplit`; `roots` are the folders to search (`data_roots`)."""


def _check_int(value: object, what: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{what} must be >= {minimum}{upper}, got {number}")
    return number


def load_dataset(name: str, root: str | os.PathLike | None = None, seed: int = 0,
                 time_steps: int | None = None) -> DatasetSplit:
    """Load data set `name` (a key of `DATASETS`, or an event data set of `bso_deploy.event_data`) from `root`
    (see `resolve_root` and `data_roots`).

    `seed` fixes the train/test split where the data set has no official one (digits); it must lie in
    [0, 2**32 - 1], the range scikit-learn accepts. `time_steps`: frames per sample of the event data sets
    (samples (T, P, H, W), input_shape one frame); the static data sets ignore it.
    """
    if isinstance(name, str) and name in EVENT_LAYOUTS:  # recordings binned into frames (bso_deploy.event_data)
        train, test = load_event_data(name, resolve_root(root), time_steps)
        return DatasetSplit(train=train, test=test, input_shape=train.input_shape, num_classes=train.num_classes,
                            name=name)
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    seed = _check_int(seed, "seed", 0, 2**32 - 1)
    return DATASETS[name](data_roots(name, root), seed)


def make_loaders(split: DatasetSplit, batch_size: int, seed: int,
                 num_workers: int = 0, drop_last: bool = True) -> tuple[DataLoader, DataLoader]:
    """Train and test DataLoaders; the train one shuffles with a `torch.Generator` seeded by `seed`.

    Two calls with the same arguments yield the same batches in the same order, epoch after epoch (the
    generator advances once per epoch). The test loader keeps the data set's order. Samples are converted
    one at a time in `num_workers` worker processes (0: in the main process), so large data sets stream
    through the loader; workers persist across epochs. Worker seeds derive from the same generator.
    With `drop_last` (default) the train loader drops the last incomplete batch: BatchNorm statistics of
    a batch of a few samples are noise, and they would enter the running statistics T times.

    Returns:
        (train_loader, test_loader), each yielding `(images (batch, *input_shape), labels (batch,))`.
    """
    if not isinstance(split, DatasetSplit):
        raise TypeError(f"split must be a DatasetSplit (from load_dataset), got {type(split).__name__}")
    batch_size = _check_int(batch_size, "batch_size", 1)
    seed = _check_int(seed, "seed", 0, 2**63 - 1)
    num_workers = _check_int(num_workers, "num_workers", 0)
    common = {"batch_size": batch_size, "num_workers": num_workers, "pin_memory": False,
              "persistent_workers": num_workers > 0}
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(split.train, shuffle=True, generator=generator, drop_last=drop_last, **common)
    test_loader = DataLoader(split.test, shuffle=False, **common)
    return train_loader, test_loader
