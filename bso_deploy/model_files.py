"""Model files that ``bso-deploy run``, ``parity`` and ``compile`` take, recognised by their content, not
their name: :func:`model_kind`, :func:`load_model` -> :class:`Model`.

- ``"nir"``: a NIR graph, HDF5 with NIR's ``node`` group (``nir.write``);
- ``"compiled"``: a saved :class:`~bso_deploy.hardware.network.FixedPointNetwork`, an .npz (zip) archive
  with a ``meta`` entry (docs/fixed-point.md §9);
- ``"netx"``: a lava-dl netx network, HDF5 with a ``layer`` group (read by
  ``bso_deploy.export.netx.from_netx`` into a FixedPointNetwork, profile ``loihi``);
- ``"checkpoint"``: a bso-deploy training checkpoint (torch's zip format, with a ``data.pkl`` entry),
  which ``compile`` exports to NIR first (as ``bso-deploy export`` does).

Anything else is a one-line ValueError naming the file.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import h5py

from .export.netx import from_netx
from .export.nir import export_checkpoint_to_nir
from .hardware.compiler import read_graph
from .hardware.network import FixedPointNetwork

MODEL_KINDS = ("nir", "compiled", "netx", "checkpoint")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_SIGNATURE_OFFSETS = (0, 512, 1024, 2048)  # the superblock may follow a user block of 512 * 2^k bytes
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

__all__ = ["MODEL_KINDS", "Model", "load_model", "model_kind", "unknown_model_error"]


class Model(NamedTuple):
    """A loaded model file: ``graph`` for a NIR graph or checkpoint (None otherwise), ``network`` for a
    compiled network or netx file (None otherwise)."""

    kind: str
    path: Path
    graph: object | None
    network: FixedPointNetwork | None


def unknown_model_error(path: str | os.PathLike) -> ValueError:
    return ValueError(f"{os.fspath(path)} is neither a NIR graph, a compiled network (.npz) nor a lava-dl netx file")


def _hdf5_kind(path: Path) -> str:

    try:
        with h5py.File(path, "r") as file:
            if isinstance(file.get("layer"), h5py.Group):
                return "netx"
            if isinstance(file.get("node"), h5py.Group):
                return "nir"
    except OSError as error:
        raise ValueError(f"{path} is an HDF5 file that cannot be read (truncated or corrupt?): "
                         f"{str(error).splitlines()[0]}") from error
    raise unknown_model_error(path)


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path} is a zip file that cannot be read (truncated or corrupt?): {error}") from error
    if "meta.npy" in names:
        return "compiled"
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return "checkpoint"
    raise unknown_model_error(path)


def model_kind(path: str | os.PathLike) -> str:
    """One of :data:`MODEL_KINDS`, from the file's first bytes and structure; FileNotFoundError for a
    missing file, ValueError for any other content."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    with path.open("rb") as file:
        head = file.read(max(HDF5_SIGNATURE_OFFSETS) + len(HDF5_SIGNATURE))
    if any(head[offset:offset + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for offset in HDF5_SIGNATURE_OFFSETS):
        return _hdf5_kind(path)
    if head[:4] in ZIP_SIGNATURES:
        return _zip_kind(path)
    raise unknown_model_error(path)


def _checkpoint_graph(path: Path, dt: float | None):
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "model.nir"
        if dt is None:
            export_checkpoint_to_nir(path, target)
        else:
            export_checkpoint_to_nir(path, target, dt=dt)
        return read_graph(target)


def load_model(path: str | os.PathLike, checkpoints: bool = False, dt: float | None = None) -> Model:
    """Read ``path`` as :func:`model_kind` says. A training checkpoint is read only with ``checkpoints``
    (``compile``), exported to NIR at ``dt`` (the exporter's default when None); otherwise it is an error
    saying how to export it."""
    path = Path(path)
    kind = model_kind(path)
    if kind == "nir":
        return Model(kind, path, read_graph(path), None)
    if kind == "compiled":
        return Model(kind, path, None, FixedPointNetwork.load(path))
    if kind == "netx":
        return Model(kind, path, None, from_netx(path))
    if not checkpoints:
        raise ValueError(f"{path} is a training checkpoint; export it first (`bso-deploy export {path} --out "
                         "model.nir`) or compile it (`bso-deploy compile`)")
    return Model(kind, path, _checkpoint_graph(path, dt), None)
