"""Reading and writing NIR files (HDF5) with clear errors and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import nir
from nir.serialization import hdf2dict

from bso_deploy.io import atomic_write_path

from .validate import check_raw_graph


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` with ``nir.write`` atomically: to a temporary file in the target directory, fsync,
    then rename over ``path``. An interrupted or failing write leaves any previous file intact."""
    return atomic_write_path(path, lambda temporary: nir.write(str(temporary), graph))


def read_nir_file(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a NIR file for :func:`from_nir` without nir's type check (the importer checks shapes itself).

    FileNotFoundError for a missing file; ValueError naming the file for an unreadable/truncated HDF5
    file, and naming the node and field for missing fields, NaN/Inf values or unsupported node types."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    try:
        with h5py.File(path, "r") as file:
            if "node" not in file:
                raise ValueError(f"{path} is an HDF5 file but not a NIR file (no 'node' group)")
            raw = hdf2dict(file["node"])
    except OSError as error:
        raise ValueError(f"{path} is not a readable NIR file (truncated or corrupt HDF5?): {error}") from error
    try:
        check_raw_graph(raw)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    try:
        graph = nir.dict2NIRNode({**raw, "type_check": False})
    except (AssertionError, TypeError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: nir could not build the graph: {type(error).__name__}: {error}") from error
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"{path} holds a single {type(graph).__name__} node, not a NIRGraph")
    return graph
