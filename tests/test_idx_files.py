"""bso_deploy/idx_files.py: idx files written here byte by byte, plain and gzipped, read back exactly; every
bad input (wrong magic number, truncated file or gzip stream, not gzip, extra bytes, label count or range) is
a one-line ValueError naming the file; the search for a data set's four files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from bso_deploy.idx_files import (
    IDX_DATASETS,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    MNIST_FILES,
    find_idx_files,
    read_idx,
    read_labelled_images,
)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The idx encoding of a uint8 array: magic (2051 for 3 dims, 2049 for 1), big-endian uint32 dims, values."""
    magic = (2051 if array.ndim == 3 else 2049) if magic is None else magic
    return np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()


def write(path: Path, content: bytes) -> Path:
    """Write `content` to `path`, gzipped when the name ends in .gz."""
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


IMAGES = np.random.default_rng(3).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
LABELS = np.array([0, 9, 3, 3, 7], dtype=np.uint8)


def test_magic_numbers_are_the_format_s():
    assert (IMAGES_MAGIC, LABELS_MAGIC) == (0x00000803, 0x00000801)  # type 0x08 (uint8), 3 or 1 dimensions


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_plain_and_gzipped_files_read_back_exactly(tmp_path, suffix):
    images = read_idx(write(tmp_path / f"images{suffix}", idx_bytes(IMAGES)), IMAGES_MAGIC)
    labels = read_idx(write(tmp_path / f"labels{suffix}", idx_bytes(LABELS)), LABELS_MAGIC)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)
    assert images.flags.writeable  # torch.from_numpy takes it without a warning


def test_a_file_larger_than_one_read_chunk(tmp_path):
    big = np.random.default_rng(4).integers(0, 256, size=(30, 200, 200), dtype=np.uint8)  # 1.2 MB > 1 MiB
    np.testing.assert_array_equal(read_idx(write(tmp_path / "big.gz", idx_bytes(big)), IMAGES_MAGIC), big)


def test_labelled_images_are_checked_against_each_other(tmp_path):
    images = write(tmp_path / "images.gz", idx_bytes(IMAGES))
    labels = write(tmp_path / "labels", idx_bytes(LABELS))
    got_images, got_labels = read_labelled_images(images, labels, 10)
    np.testing.assert_array_equal(got_images, IMAGES)
    assert got_labels.dtype == np.int64 and got_labels.tolist() == LABELS.tolist()


def one_line_error(call, *fragments: str) -> str:
    with pytest.raises(ValueError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_wrong_magic_number(tmp_path, suffix):
    labels_as_images = write(tmp_path / f"labels{suffix}", idx_bytes(LABELS))
    one_line_error(lambda: read_idx(labels_as_images, IMAGES_MAGIC), str(labels_as_images), "magic number 2049",
                   "not 2051", "replace it")
    garbage = write(tmp_path / f"garbage{suffix}", b"PK\x03\x04 not an idx file at all")
    one_line_error(lambda: read_idx(garbage, LABELS_MAGIC), str(garbage), "magic number")


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("keep", [2, 10, 16 + 5 * 12 - 1], ids=["in-magic", "in-dims", "in-values"])
def test_truncated_file(tmp_path, suffix, keep):
    """The header declares more bytes than the file holds (cut inside the magic, the dims or the values)."""
    path = write(tmp_path / f"images{suffix}", idx_bytes(IMAGES)[:keep])
    one_line_error(lambda: read_idx(path, IMAGES_MAGIC, remedy="get a new copy"), str(path), "get a new copy")
    if keep > 16:
        one_line_error(lambda: read_idx(path, IMAGES_MAGIC), "truncated", "(5, 4, 3)", "60 bytes", "only 59")


def test_bytes_beyond_the_declared_values(tmp_path):
    path = write(tmp_path / "labels.gz", idx_bytes(LABELS) + b"\x00")
    one_line_error(lambda: read_idx(path, LABELS_MAGIC), str(path), "more bytes than its header declares")


@pytest.mark.parametrize("cut", [10, 40, -4], ids=["header", "stream", "trailer"])
def test_truncated_gzip_stream(tmp_path, cut):
    """A .gz cut short: gzip's EOFError becomes a ValueError naming the file (or, cut inside the stream, the
    idx check finds the values short)."""
    compressed = gzip.compress(idx_bytes(IMAGES))
    path = tmp_path / "images.gz"
    path.write_bytes(compressed[:cut])
    message = one_line_error(lambda: read_idx(path, IMAGES_MAGIC), str(path))
    assert "truncated" in message


def test_not_gzip_despite_the_name(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(idx_bytes(LABELS))  # plain idx bytes under a .gz name
    one_line_error(lambda: read_idx(path, LABELS_MAGIC), str(path), "not a valid gzip file", "rename it")


def test_label_count_differs_from_image_count(tmp_path):
    images = write(tmp_path / "images", idx_bytes(IMAGES))
    labels = write(tmp_path / "labels.gz", idx_bytes(LABELS[:4]))
    one_line_error(lambda: read_labelled_images(images, labels, 10), str(labels), str(images), "4 labels",
                   "5 images")


def test_labels_outside_the_classes(tmp_path):
    images = write(tmp_path / "images", idx_bytes(IMAGES))
    labels = write(tmp_path / "labels", idx_bytes(np.array([0, 1, 10, 2, 255], dtype=np.uint8)))
    one_line_error(lambda: read_labelled_images(images, labels, 10), str(labels), "[0, 10)", "[0, 255]")


def test_bad_magic_argument():
    with pytest.raises(ValueError, match="2051"):
        read_idx("anything", 2050)


# ---------------------------------------------------------------- finding a data set's four files


def write_four(folder: Path, suffixes=("", "", ".gz", ".gz")) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write(folder / f"{name}{suffix}", b"x") for name, suffix in zip(MNIST_FILES, suffixes)}


def test_the_first_folder_holding_all_four_wins_plain_before_gzipped(tmp_path):
    """Per root in order: <root>/FashionMNIST/raw, <root>, <root>/raw; a partial folder is passed over."""
    fashion = IDX_DATASETS["fashion-mnist"]
    partial = write_four(tmp_path / "first")
    partial["train-labels-idx1-ubyte"].unlink()
    torchvision = write_four(tmp_path / "second" / "FashionMNIST" / "raw")
    write(tmp_path / "second" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte", b"x")  # both: plain wins
    write_four(tmp_path / "second")  # complete too, but searched after torchvision's folder
    found = find_idx_files(fashion, (tmp_path / "first", tmp_path / "second"))
    assert found["t10k-images-idx3-ubyte"] == tmp_path / "second" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    assert found["t10k-labels-idx1-ubyte"] == torchvision["t10k-labels-idx1-ubyte"]
    assert found["train-images-idx3-ubyte"] == torchvision["train-images-idx3-ubyte"]
    assert {path.parent for path in found.values()} == {tmp_path / "second" / "FashionMNIST" / "raw"}
    debian_raw = write_four(tmp_path / "third" / "raw", (".gz",) * 4)
    assert find_idx_files(fashion, (tmp_path / "first", tmp_path / "third")) == debian_raw


def test_nothing_found_names_the_folders_what_they_lack_and_how_to_get_it(tmp_path):
    write_four(tmp_path / "raw")
    (tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        find_idx_files(IDX_DATASETS["fashion-mnist"], (tmp_path,))
    message = str(caught.value)
    assert "\n" not in message
    for folder in (tmp_path / "FashionMNIST" / "raw", tmp_path, tmp_path / "raw"):
        assert str(folder) in message
    assert f"{tmp_path / 'raw'} lacks t10k-labels-idx1-ubyte." in message
    assert "apt-get install dataset-fashion-mnist" in message and "Nothing is downloaded" in message
