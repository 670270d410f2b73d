"""Reading and writing NIR files (HDF5) with clear errors and atomic writes; :func:`read_hdf5_tree`, the bounded
HDF5 reader that the NIR and netx readers share.

:func:`read_nir_file` reads the HDF5 tree itself (not with ``nir.serialization.hdf2dict``) so that a hostile
file is refused before any work, with an :class:`~bso_deploy.errors.InvalidFileError` naming the file and the
entry: links other than plain hard links (soft and external links, and hard links that make the tree a cycle),
groups nested deeper than :data:`MAX_GROUP_DEPTH`, more than :data:`MAX_ENTRIES` entries, a dataset declaring
more than :data:`MAX_DATASET_ELEMENTS` elements or a file more than :data:`MAX_TOTAL_ELEMENTS` in all (checked
from the declared shapes, before a byte is read: a 256 x 2^28 weight stored in a few bytes is refused, not
allocated), datasets that are neither numbers, booleans nor strings (complex, compound, references), and
whatever HDF5 itself cannot read (truncated, corrupt or bit-flipped files).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import h5py
import nir

from bso_deploy.errors import InvalidFileError, InvalidInputError, MissingFileError
from bso_deploy.io import atomic_write_path

from .validate import check_raw_graph

MAX_GROUP_DEPTH = 32  # nested groups: node/nodes/<name>/metadata/... and subgraphs, with room to spare
MAX_ENTRIES = 100_000  # groups and datasets in one file
MAX_DATASET_ELEMENTS = 1 << 26  # 64 Mi values (512 MiB as float64): larger than any network the compiler maps
MAX_TOTAL_ELEMENTS = 1 << 27
_READABLE_KINDS = "biufSUO"  # bool, integers, floats, bytes/str, variable-length strings (checked below)


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` with ``nir.write`` atomically: to a temporary file in the target directory, fsync,
    then rename over ``path``. An interrupted or failing write leaves any previous file intact."""
    return atomic_write_path(path, lambda temporary: nir.write(str(temporary), graph))


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, checked to be an existing regular file: MissingFileError, or InvalidFileError for a
    directory or a name the system refuses (too long, ...)."""
    path = Path(path)
    try:
        if path.is_file():
            return path
        exists = path.exists()
    except OSError as error:
        raise InvalidFileError(f"{what} {str(path)[:200]}: cannot be opened ({error.strerror or error})") from None
    if exists:
        raise InvalidFileError(f"{what} {path} is not a regular file (a directory?)")
    raise MissingFileError(f"{what} {path} does not exist")


class _Budget:
    """What one file may still hold: entries and elements (declared, before reading)."""

    def __init__(self) -> None:
        self.entries = 0
        self.elements = 0


def _dataset_value(dataset: h5py.Dataset, where: str, budget: _Budget) -> Any:
    shape, dtype = dataset.shape, dataset.dtype
    if shape is None:  # an HDF5 null dataspace
        raise InvalidFileError(f"{where} is an empty (null) dataset")
    elements = math.prod(shape)
    budget.elements += elements
    if elements > MAX_DATASET_ELEMENTS or budget.elements > MAX_TOTAL_ELEMENTS:
        raise InvalidFileError(f"{where} declares shape {shape} ({elements} values); a NIR file may hold at most "
                               f"{MAX_DATASET_ELEMENTS} values per dataset and {MAX_TOTAL_ELEMENTS} in all")
    if dtype.kind not in _READABLE_KINDS or (dtype.kind == "O" and h5py.check_string_dtype(dtype) is None):
        kind = "complex numbers" if dtype.kind == "c" else f"dtype {dtype}"
        raise InvalidFileError(f"{where} holds {kind}; NIR parameters must be real numbers, booleans or strings")
    value = dataset[()]
    if isinstance(value, bytes):
        try:
            return value.decode("utf8")
        except UnicodeDecodeError:
            raise InvalidFileError(f"{where} holds a string that is not UTF-8") from None
    return value


def _read_group(group: h5py.Group, where: str, depth: int, budget: _Budget, seen: set[int]) -> dict[str, Any]:
    """The group as a dict (the shape ``hdf2dict`` gives), every entry checked before it is read."""
    if depth > MAX_GROUP_DEPTH:
        raise InvalidFileError(f"{where} is nested {depth} groups deep; a NIR file nests at most {MAX_GROUP_DEPTH}")
    address = h5py.h5o.get_info(group.id).addr
    if address in seen:
        raise InvalidFileError(f"{where} links back to a group that contains it; a NIR file is a tree")
    seen = seen | {address}
    result: dict[str, Any] = {}
    for key in group:
        budget.entries += 1
        if budget.entries > MAX_ENTRIES:
            raise InvalidFileError(f"{where} holds more than {MAX_ENTRIES} entries")
        entry = f"{where}/{key}"
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise InvalidFileError(f"{entry} is a {type(link).__name__}; a NIR file holds only its own groups and "
                                   "datasets")
        item = group.get(key)
        if isinstance(item, h5py.Group):
            result[key] = _read_group(item, entry, depth + 1, budget, seen)
        elif isinstance(item, h5py.Dataset):
            result[key] = _dataset_value(item, entry, budget)
        else:
            raise InvalidFileError(f"{entry} is neither a group nor a dataset")
    return result


def read_hdf5_tree(group: h5py.Group, where: str) -> dict[str, Any]:
    """``group`` and everything under it as nested dicts of values (strings decoded), with this module's limits
    and checks applied before each dataset is read; InvalidFileError naming the entry otherwise. The lava-dl
    netx reader reads its files with it too."""
    return _read_group(group, where, 1, _Budget(), set())


def read_raw_graph(path: Path) -> dict[str, Any]:
    """The file's ``node`` group as a dict (``nir.serialization.hdf2dict``'s shape), read with the limits and
    checks of this module; InvalidFileError naming the file otherwise."""
    try:
        with h5py.File(path, "r") as file:
            root = file.get("node", getlink=True)
            if root is None or not isinstance(file.get("node"), h5py.Group):
                raise InvalidFileError(f"{path} is an HDF5 file but not a NIR file (no 'node' group)")
            if not isinstance(root, h5py.HardLink):
                raise InvalidFileError(f"{path}: 'node' is a {type(root).__name__}; a NIR file holds its own groups")
            return read_hdf5_tree(file["node"], "node")
    except InvalidFileError as error:
        if str(path) in str(error):
            raise
        raise InvalidFileError(f"{path}: {error}") from None
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as error:  # h5py's errors on corrupt files
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise InvalidFileError(f"{path} is not a readable NIR file (truncated or corrupt HDF5?): {first_line}"
                               ) from None


def read_nir_file(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a NIR file for :func:`from_nir` without nir's type check (the importer checks shapes itself).

    MissingFileError for a missing file; InvalidFileError naming the file for an unreadable, truncated or
    oversized HDF5 file (:func:`read_raw_graph`), and naming the node and field for missing fields, NaN/Inf or
    complex values, bad metadata or unsupported node types (:func:`.validate.check_raw_graph`)."""
    path = existing_file(path, "NIR file")
    raw = read_raw_graph(path)
    try:
        check_raw_graph(raw)
    except InvalidInputError as error:
        raise InvalidFileError(f"{path}: {error}") from None
    try:
        graph = nir.dict2NIRNode({**raw, "type_check": False})
    except (AssertionError, TypeError, KeyError, ValueError, AttributeError, IndexError) as error:
        raise InvalidFileError(f"{path}: nir could not build the graph: {type(error).__name__}: {error}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise InvalidFileError(f"{path} holds a single {type(graph).__name__} node, not a NIRGraph")
    return graph
