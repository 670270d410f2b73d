"""The .npy header parser both file readers share (hardware/npy_header.py): every format version numpy writes,
the stream left at the data, damaged headers and impossible shapes refused with a one-line reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from bso_deploy.hardware.npy_header import NpyHeader, NpyHeaderError, read_npy_header


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize("version", [None, (1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("seed", range(4))
def test_the_header_numpy_writes_is_read_back_and_the_stream_left_at_the_data(version, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(size) for size in rng.integers(0, 5, size=int(rng.integers(0, 4))))
    dtype = np.dtype(["<i2", ">i8", "<f4", "?", "<u4"][seed])
    array = rng.integers(0, 2, size=shape).astype(dtype)
    if seed % 2:
        array = np.asfortranarray(array)
    fortran = not array.flags.c_contiguous  # numpy writes C order for an array that is both
    handle = io.BytesIO(npy_bytes(array, version))
    header = read_npy_header(handle)
    assert header == NpyHeader(shape, fortran, dtype) and all(type(size) is int for size in header.shape)
    data = np.frombuffer(handle.read(), dtype=dtype, count=array.size)
    expected = data.reshape(shape[::-1]).transpose() if fortran else data.reshape(shape)
    np.testing.assert_array_equal(expected, array)


def test_a_fortran_order_array_says_so():
    header = read_npy_header(io.BytesIO(npy_bytes(np.asfortranarray(np.arange(6.0).reshape(2, 3)))))
    assert header == NpyHeader((2, 3), True, np.dtype("<f8"))


def damaged(raw: bytes, what: str) -> bytes:
    header_end = raw.index(b"\n") + 1
    if what == "magic":
        return b"\x93NUMPX" + raw[6:]
    if what == "version":
        return raw[:6] + b"\x07\x00" + raw[8:]
    if what == "empty":
        return b""
    if what == "cut":
        return raw[:header_end - 20]
    if what == "unterminated":
        return raw[:10] + b"{'descr': '<f8" + b" " * (header_end - 25) + b"\n"
    if what == "negative":
        return raw.replace(b"(2, 3)", b"(2,-3)")
    raise AssertionError(what)


@pytest.mark.parametrize("what,reason", [("magic", "damaged header: "), ("version", "unknown .npy format version"),
                                         ("empty", "damaged header: "), ("cut", "damaged header: "),
                                         ("unterminated", "damaged header: "),
                                         ("negative", "declares a negative size in the shape (2, -3)")])
def test_a_damaged_header_is_one_line_naming_why(what, reason):
    with pytest.raises(NpyHeaderError) as raised:
        read_npy_header(io.BytesIO(damaged(npy_bytes(np.zeros((2, 3))), what)))
    assert reason in raised.value.reason and "\n" not in raised.value.reason
    assert isinstance(raised.value, ValueError) and str(raised.value) == raised.value.reason
