"""The arrays ``run``, ``parity`` and ``compile`` read (inputs, labels, calibration data): :func:`read_array`.
Their values are checked by ``hardware.input_checks``.

A file is read only after its header was checked: a ``.npy`` file, or a ``.npz`` archive holding exactly one
array (``numpy.savez``), whose header parses, whose dtype is real numbers (bool, integers, floats: never
Python objects, so no pickle is ever loaded), and whose declared size fits both the bytes the file holds and
the memory budget (``hardware.limits``) before the data are allocated.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from typing import IO

import numpy as np

from .errors import BsoDeployError, InvalidFileError, MissingFileError
from .hardware.input_checks import REAL_KINDS
from .hardware.npy_header import NpyHeaderError, read_npy_header
from .limits import check_memory

__all__ = ["read_array"]

ZIP_SIGNATURE = b"PK"


def _header(handle: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream ``handle``, left at the start of the data."""
    try:
        shape, fortran, dtype = read_npy_header(handle)
    except NpyHeaderError as error:
        raise InvalidFileError(f"{name} is not a readable .npy array ({error.reason}); save it again with "
                               "numpy.save") from error
    if dtype.hasobject or dtype.kind not in REAL_KINDS or dtype.fields is not None:
        raise InvalidFileError(f"{name} holds dtype {dtype}; save real numbers (bool, integer or float; never "
                               "Python objects, which would need a pickle)")
    return shape, fortran, dtype


def _checked_size(shape: tuple[int, ...], dtype: np.dtype, available: int, name: str) -> None:
    declared = math.prod(shape) * dtype.itemsize
    if declared > available:
        raise InvalidFileError(f"{name} declares shape {shape} of {dtype} ({declared} bytes) but holds {available} "
                               "bytes of data (truncated?); save it again with numpy.save")
    check_memory(declared, f"reading {name} (shape {shape})")


def _read_data(handle: IO[bytes], shape: tuple[int, ...], fortran: bool, dtype: np.dtype, name: str) -> np.ndarray:
    count = math.prod(shape)
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise InvalidFileError(f"{name} ends before its data (truncated?); save it again with numpy.save")
    array = np.frombuffer(data, dtype=dtype, count=count).copy()
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def _read_npy(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        shape, fortran, dtype = _header(handle, path)
        _checked_size(shape, dtype, os.path.getsize(path) - handle.tell(), path)
        return _read_data(handle, shape, fortran, dtype, path)


def _read_npz(path: str) -> np.ndarray:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) != 1 or not members[0].filename.endswith(".npy"):
                raise InvalidFileError(f"{path} holds {[info.filename for info in members]}; an .npz input must "
                                       "hold exactly one array (numpy.savez(path, x))")
            info = members[0]
            name = f"{path}:{info.filename}"
            with archive.open(info) as handle:
                shape, fortran, dtype = _header(handle, name)
                _checked_size(shape, dtype, info.file_size - handle.tell(), name)
                return _read_data(handle, shape, fortran, dtype, name)
    except BsoDeployError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, RuntimeError,
            ValueError, zlib.error) as error:  # zipfile's errors for a damaged archive or member
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidFileError(f"{path} is not a readable .npz archive (truncated or corrupt?): {reason}") from error


def read_array(path: str | os.PathLike, what: str) -> np.ndarray:
    """The array in the .npy (or one-array .npz) file ``path``; ``what`` ("inputs", "labels", "calibration")
    names it in errors: MissingFileError, InvalidFileError, ResourceLimitError (module docstring)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InvalidFileError(f"{what} file {path} is a directory; give a .npy file (numpy.save)")
    if not os.path.isfile(path):
        raise MissingFileError(f"{what} file {path} does not exist; save an array with numpy.save "
                               "(shape (T, batch, *input_shape) or (batch, *input_shape))")
    try:
        with open(path, "rb") as handle:
            signature = handle.read(len(ZIP_SIGNATURE))
        return _read_npz(path) if signature == ZIP_SIGNATURE else _read_npy(path)
    except (IsADirectoryError, PermissionError) as error:
        raise InvalidFileError(f"{what} file {path} cannot be read: {error.strerror}") from error
