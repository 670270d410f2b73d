"""The header of a ``.npy`` stream from an untrusted file, parsed before any data are read:
:func:`read_npy_header`. Shared by the compiled-network reader (``hardware/network_file.py``) and the input
array reader (``bso_deploy/input_files.py``), which each turn a :class:`NpyHeaderError` into their own
:class:`~bso_deploy.errors.InvalidFileError` naming the file or the entry.
"""

from __future__ import annotations

import tokenize
from typing import IO, NamedTuple

import numpy as np

__all__ = ["NPY_MAX_HEADER_BYTES", "NpyHeader", "NpyHeaderError", "read_npy_header"]

NPY_MAX_HEADER_BYTES = 10000  # numpy's own default limit of a header's size
# What numpy's header parser raises for a damaged header (tokenize.TokenError for an unterminated string,
# MemoryError for a header length that cannot be allocated).
_HEADER_ERRORS = (ValueError, SyntaxError, EOFError, OverflowError, TypeError, UnicodeError, MemoryError,
                  tokenize.TokenError)


class NpyHeader(NamedTuple):
    """What a ``.npy`` header declares: the array's shape (non-negative Python ints), whether its data are in
    Fortran order, and its dtype."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype


class NpyHeaderError(ValueError):
    """A header that does not parse or declares an impossible shape; ``reason`` is one line that says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_npy_header(handle: IO[bytes]) -> NpyHeader:
    """The header of the .npy stream ``handle`` (format versions 1.0, 2.0 and 3.0), ``handle`` left at the
    start of the data. Raises :class:`NpyHeaderError` for a damaged header or a shape with a negative or
    non-integer size; the dtype is the caller's to check (no data, hence no pickle, is ever read here)."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle, NPY_MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle, NPY_MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unknown .npy format version {version}")
    except _HEADER_ERRORS as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise NpyHeaderError(f"damaged header: {first_line}") from error
    if any(not isinstance(size, int) or size < 0 for size in shape):
        raise NpyHeaderError(f"declares a negative size in the shape {tuple(shape)}")
    return NpyHeader(tuple(int(size) for size in shape), bool(fortran_order), dtype)
