"""Finding and reading idx files, the format of MNIST and Fashion-MNIST, plain or gzipped, every header checked.

An idx file is a 4-byte magic number, then one big-endian uint32 per dimension, then the values in C order:

    magic = 0x00 0x00 <type> <number of dimensions>      type 0x08: unsigned byte (the only type read here)
    2051 = 0x00000803: images, uint8 of shape (N, H, W)
    2049 = 0x00000801: labels, uint8 of shape (N,)

A name ending in ``.gz`` is decompressed on the fly with :mod:`gzip` (as Debian's ``dataset-fashion-mnist``
ships the files); any other name is read as it is (torchvision's ``raw/`` folders). Only bytes are read: no
code in a file is ever run. Every problem is a one-line :class:`ValueError` naming the file and what to do.

:func:`find_idx_files` looks for the four files of a data set (:data:`IDX_DATASETS`) in the folders that
:mod:`bso_deploy.data` gives it; :func:`read_labelled_images` reads one split.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import numpy as np

LABELS_MAGIC = 2049
"""Magic number of an idx label file: uint8 values, one dimension (N,)."""
IMAGES_MAGIC = 2051
"""Magic number of an idx image file: uint8 values, three dimensions (N, H, W)."""

_CHUNK_BYTES = 1 << 20  # read in 1 MiB pieces: a corrupt header cannot make us allocate what is not there
_DIMENSION_BYTES = 4
REPLACE_FILE = "replace it with an intact copy"
"""What the errors tell the user to do with a bad file, unless the caller names a better way (``remedy``)."""
_KINDS = {LABELS_MAGIC: "label", IMAGES_MAGIC: "image"}


def _open(path: Path) -> BinaryIO:
    """The file's bytes: decompressed by gzip when the name ends in ``.gz``, else as they are."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _read_exactly(handle: BinaryIO, count: int) -> bytearray:
    """Up to ``count`` bytes from ``handle``, fewer only where the stream ends first."""
    buffer = bytearray()
    while len(buffer) < count:
        chunk = handle.read(min(_CHUNK_BYTES, count - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def _read(handle: BinaryIO, path: Path, magic: int, remedy: str) -> np.ndarray:
    header = _read_exactly(handle, _DIMENSION_BYTES)
    if len(header) < _DIMENSION_BYTES:
        raise ValueError(f"{path} is not an idx file: it holds {len(header)} bytes, fewer than the 4-byte magic "
                         f"number; {remedy}")
    found = int.from_bytes(header, "big")
    if found != magic:
        raise ValueError(f"{path} has magic number {found} (0x{found:08x}), not {magic} (0x{magic:08x}) of an idx "
                         f"{_KINDS[magic]} file: it is corrupt or another kind of file; {remedy}")
    ndim = magic & 0xFF
    dims_bytes = _read_exactly(handle, ndim * _DIMENSION_BYTES)
    if len(dims_bytes) < ndim * _DIMENSION_BYTES:
        raise ValueError(f"{path} is truncated inside its header ({ndim} dimensions declared); {remedy}")
    shape = tuple(int.from_bytes(dims_bytes[index:index + _DIMENSION_BYTES], "big")
                  for index in range(0, len(dims_bytes), _DIMENSION_BYTES))
    count = int(np.prod(shape, dtype=object))
    values = _read_exactly(handle, count)
    if len(values) < count:
        raise ValueError(f"{path} is truncated: its header declares shape {shape} ({count} bytes of values), "
                         f"but only {len(values)} follow; {remedy}")
    if handle.read(1):
        raise ValueError(f"{path} holds more bytes than its header declares (shape {shape}, {count} bytes of "
                         f"values): it is corrupt; {remedy}")
    return np.frombuffer(values, dtype=np.uint8).reshape(shape)


def read_idx(path: str | os.PathLike, magic: int, remedy: str = REPLACE_FILE) -> np.ndarray:
    """The uint8 array of idx file ``path`` (plain, or gzipped when the name ends in ``.gz``).

    Args:
        path: the file.
        magic: the magic number it must carry, :data:`IMAGES_MAGIC` (shape (N, H, W)) or :data:`LABELS_MAGIC`
            (shape (N,)).
        remedy: what the error messages tell the user to do about a bad file.

    Raises:
        ValueError: wrong magic number, a header or values shorter than declared (a truncated file), bytes
            beyond the declared values, or a gzip stream that is not gzip or ends early.
    """
    if magic not in _KINDS:
        raise ValueError(f"magic must be {IMAGES_MAGIC} (images) or {LABELS_MAGIC} (labels), got {magic!r}")
    path = Path(path)
    try:
        with _open(path) as handle:
            return _read(handle, path, magic, remedy)
    except EOFError:
        raise ValueError(f"{path} is a truncated gzip file (the compressed stream ends early); {remedy}") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path} is not a valid gzip file ({error}): decompressing it failed; rename it "
                         f"without .gz if it is not compressed, else {remedy}") from None


def read_labelled_images(images_path: str | os.PathLike, labels_path: str | os.PathLike,
                         num_classes: int, remedy: str = REPLACE_FILE) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and their labels (N,) int64 from a pair of idx files, checked against each other.

    Raises:
        ValueError: anything :func:`read_idx` rejects, a label count that differs from the image count, or a
            label outside ``[0, num_classes)``.
    """
    images = read_idx(images_path, IMAGES_MAGIC, remedy)
    labels = read_idx(labels_path, LABELS_MAGIC, remedy).astype(np.int64)
    if len(labels) != len(images):
        raise ValueError(f"{labels_path} holds {len(labels)} labels but {images_path} holds {len(images)} images: "
                         f"the two files must come from the same split of the same data set; {remedy}")
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"labels in {labels_path} must lie in [0, {num_classes}), found "
                         f"[{int(labels.min())}, {int(labels.max())}]: the files are corrupt or hold another "
                         f"data set; {remedy}")
    return images, labels


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The four idx files of an MNIST-format data set (each plain, or gzipped with the suffix ``.gz``)."""


@dataclass(frozen=True)
class IdxDataset:
    """Where an MNIST-format data set (four idx files, :data:`MNIST_FILES`) is looked for, and how to get it.

    Attributes:
        title: its name in messages. torchvision_folder: torchvision's folder under a root
        (``<root>/<torchvision_folder>/raw/``). system_folder: its folder under ``bso_deploy.data.SYSTEM_DATA_DIR``.
        how_to_get: how a user obtains the files (nothing is downloaded). remedy: what to do about a bad file.
    """

    title: str
    torchvision_folder: str
    system_folder: str
    how_to_get: str
    remedy: str


IDX_DATASETS: Mapping[str, IdxDataset] = MappingProxyType({
    "mnist": IdxDataset(
        "MNIST", "MNIST", "mnist",
        "copy the four idx files of MNIST (http://yann.lecun.com/exdb/mnist/, or torchvision's <root>/MNIST/raw/), "
        "plain or .gz, into one of these folders",
        "replace it with an intact copy of MNIST's file"),
    "fashion-mnist": IdxDataset(
        "Fashion-MNIST", "FashionMNIST", "fashion-mnist",
        "apt-get install dataset-fashion-mnist (puts them in /usr/share/datasets/fashion-mnist/, found with no "
        "root given), or copy the four idx files (https://github.com/zalandoresearch/fashion-mnist, or "
        "torchvision's <root>/FashionMNIST/raw/), plain or .gz, into one of these folders",
        "re-install it (apt-get install --reinstall dataset-fashion-mnist) or replace it with an intact copy"),
})
"""Data set name -> where its idx files are looked for (module docstring)."""


def _idx_folders(dataset: IdxDataset, roots: tuple[Path, ...]) -> list[Path]:
    """The folders that may hold the idx files, in search order (`bso_deploy.data`'s docstring), no repeats."""
    folders: list[Path] = []
    for root in roots:
        for folder in (root / dataset.torchvision_folder / "raw", root, root / "raw"):
            if folder not in folders:
                folders.append(folder)
    return folders


def find_idx_files(dataset: IdxDataset, roots: tuple[Path, ...]) -> dict[str, Path]:
    """`{name: path}` for the four :data:`MNIST_FILES`, all from the first folder of `_idx_folders` that holds
    each of them, plain (preferred: no decompression) or gzipped (`<name>.gz`).

    Raises:
        FileNotFoundError: no folder holds all four; names the folders searched, what partial folders lack
            and how to get the data set.
    """
    partial = []
    folders = _idx_folders(dataset, roots)
    for folder in folders:
        found = {}
        for name in MNIST_FILES:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(MNIST_FILES):
            return found
        if found:
            lacking = ", ".join(name for name in MNIST_FILES if name not in found)
            partial.append(f" {folder} lacks {lacking}.")
    raise FileNotFoundError(
        f"{dataset.title} not found: no folder holds all of {', '.join(MNIST_FILES)} (each plain or .gz); "
        f"searched {', '.join(str(folder) for folder in folders)}.{''.join(partial)} Nothing is downloaded: "
        f"{dataset.how_to_get} (or pass root=... / --data-root / set $BSO_DATA to the folder that holds "
        "them)."
    )
