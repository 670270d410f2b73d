"""Reading a saved :class:`~.network.FixedPointNetwork` (.npz, docs/fixed-point.md §9) from an untrusted file:
:func:`read_network_file` returns the dict that ``FixedPointNetwork.from_dict`` takes, or raises
:class:`~bso_deploy.errors.InvalidFileError` naming the file and the entry.

Checked before anything is allocated: the file is a readable zip archive; every member is a .npy array whose
header parses, whose dtype is integers (``meta``: one Unicode string) and whose declared size fits both the bytes
the member holds and :data:`MAX_ARRAY_ELEMENTS`; ``meta`` is at most :data:`MAX_META_CHARS` characters of JSON
nested at most :data:`MAX_JSON_DEPTH` deep (no NaN/Infinity); its structure has the fields the format names,
with JSON types that fit (:data:`LAYER_FIELD_TYPES`), shapes of positive integers and at most
:data:`MAX_LAYERS` layers. The values' ranges are the constructors' to check (``hardware/layer.py``).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from bso_deploy.errors import InvalidFileError, MissingFileError

from .npy_header import NpyHeaderError, read_npy_header

__all__ = ["MAX_ARRAY_ELEMENTS", "MAX_LAYERS", "read_network_file"]

MAX_ARRAY_ELEMENTS = 1 << 26  # one weight array: 64 Mi integers (512 MiB as int64), past any network here
MAX_META_CHARS = 1 << 24
MAX_JSON_DEPTH = 16  # meta nests: network -> layers -> layer -> quantization entries -> their values
MAX_LAYERS = 1024
ARRAY_FIELDS = ("weight", "vth", "bias_mant", "bias_exp")
_INT = (int,)
# JSON types each layer field may have in meta (arrays come from their own members).
LAYER_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "kind": (str,), "input_shape": (list,), "binary": (bool,), "weight_mant": _INT,
    "weight_exp": _INT, "du": _INT, "dv": _INT, "bias_delay": _INT, "reset": (str,), "spiking": (bool,),
    "stride": (list,), "padding": (list,), "pool": (list,), "shift_rounding": (str,), "recurrent_binary": (bool,),
    "recurrent_weight_mant": _INT, "recurrent_weight_exp": _INT,
}
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError)


def _member_header(handle, name: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        shape, _, dtype = read_npy_header(handle)
    except NpyHeaderError as error:
        raise InvalidFileError(f"entry {name!r} is not a readable array ({error.reason[:120]})") from None
    return shape, dtype


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One member as an array, its header checked before its data are read."""
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as handle:
        shape, dtype = _member_header(handle, name)
        header_bytes = handle.tell()
    elements = math.prod(shape)
    if name == "meta":
        if dtype.kind != "U" or shape != () or dtype.itemsize // 4 > MAX_META_CHARS:
            raise InvalidFileError(f"entry 'meta' must be one JSON string of at most {MAX_META_CHARS} characters, "
                                   f"got dtype {dtype} and shape {shape}")
    elif dtype.kind not in "iu" or dtype.fields is not None:
        raise InvalidFileError(f"entry {name!r} holds dtype {dtype}; a compiled network holds integers only")
    elif elements > MAX_ARRAY_ELEMENTS:
        raise InvalidFileError(f"entry {name!r} declares shape {shape} ({elements} values); the limit is "
                               f"{MAX_ARRAY_ELEMENTS}")
    if header_bytes + elements * dtype.itemsize > info.file_size:
        raise InvalidFileError(f"entry {name!r} declares shape {shape} of {dtype} but holds fewer bytes (truncated?)")
    with archive.open(info) as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)


def _json_nesting(text: str) -> int:
    """The deepest bracket nesting of a JSON text, outside strings (json's parser recurses once per level)."""
    depth = running = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            running += 1
            depth = max(depth, running)
        elif char in "]}":
            running -= 1
    return depth


def _reject_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not a number a compiled network holds")


def _meta(text: str) -> dict[str, Any]:
    if _json_nesting(text) > MAX_JSON_DEPTH:  # refused before json's recursive parser sees it
        raise InvalidFileError(f"entry 'meta' nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidFileError(f"entry 'meta' is not valid JSON: {str(error)[:120]}") from None
    if not isinstance(data, dict):
        raise InvalidFileError(f"entry 'meta' must be a JSON object, got {type(data).__name__}")
    return data


def _shape(value: Any, where: str, minimum: int = 1) -> None:
    if not isinstance(value, list) or not value or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= minimum for size in value):
        raise InvalidFileError(f"{where} must be a non-empty list of integers >= {minimum}, got {str(value)[:80]}")
    if math.prod(value) > MAX_ARRAY_ELEMENTS:
        raise InvalidFileError(f"{where} {value} has more than {MAX_ARRAY_ELEMENTS} values")


def _check_layer(layer: Any, index: int) -> None:
    where = f"layer {index}"
    if not isinstance(layer, dict):
        raise InvalidFileError(f"{where} must be a JSON object, got {type(layer).__name__}")
    for field, types in LAYER_FIELD_TYPES.items():
        if field not in layer:
            continue
        value = layer[field]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise InvalidFileError(f"{where}: field {field!r} must be {' or '.join(t.__name__ for t in types)}, "
                                   f"got {str(value)[:60]!r} ({type(value).__name__})")
    for field in ("input_shape", "stride", "pool"):
        if field in layer:
            _shape(layer[field], f"{where}: field {field!r}")
    if "padding" in layer:
        _shape(layer["padding"], f"{where}: field 'padding'", minimum=0)
        if max(layer["padding"]) > MAX_ARRAY_ELEMENTS:
            raise InvalidFileError(f"{where}: field 'padding' {layer['padding']} is past {MAX_ARRAY_ELEMENTS}")


def _check_structure(data: dict[str, Any]) -> None:
    if "input_shape" in data:
        _shape(data["input_shape"], "field 'input_shape'")
    layers = data.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise InvalidFileError(f"field 'layers' must be a list of 1 to {MAX_LAYERS} layers, got "
                               f"{str(layers)[:60]!r}")
    for index, layer in enumerate(layers):
        _check_layer(layer, index)
    quantization = data.get("quantization", [])
    if not isinstance(quantization, list) or not all(isinstance(item, dict) for item in quantization):
        raise InvalidFileError("field 'quantization' must be a list of JSON objects, one per layer")
    for field in ("input_scale", "input_max"):
        value = data.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidFileError(f"field {field!r} must be a number or null, got {str(value)[:60]!r}")
    if not isinstance(data.get("profile"), str):
        raise InvalidFileError(f"field 'profile' must be a string, got {str(data.get('profile'))[:60]!r}")


def read_network_file(path: str | os.PathLike) -> dict[str, Any]:
    """The checked contents of a saved network: meta's dict with every layer's arrays filled in."""
    path = Path(path)
    try:
        if not path.is_file():
            if path.exists():
                raise InvalidFileError(f"compiled network {path} is not a regular file (a directory?)")
            raise MissingFileError(f"compiled network {path} does not exist")
    except OSError as error:
        if isinstance(error, (InvalidFileError, MissingFileError)):
            raise
        raise InvalidFileError(f"compiled network {str(path)[:200]}: cannot be opened ({error.strerror})") from None
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            if "meta" not in members:
                raise InvalidFileError("it holds no 'meta' entry")
            data = _meta(str(_read_member(archive, members["meta"])[()]))
            _check_structure(data)
            for index, layer in enumerate(data["layers"]):
                for name in (*ARRAY_FIELDS, "recurrent_weight"):
                    key = f"layers/{index}/{name}"
                    if key in members:
                        layer[name] = _read_member(archive, members[key])
                    elif name != "recurrent_weight":  # absent recurrent weight: None (§9)
                        raise InvalidFileError(f"it lacks the entry {key!r}")
                    else:
                        layer[name] = None
    except InvalidFileError as error:
        raise InvalidFileError(f"{path} is not a saved FixedPointNetwork: {error}") from None
    except _ZIP_ERRORS as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise InvalidFileError(f"{path} is not a readable compiled network (truncated or corrupt .npz?): "
                               f"{reason[:160]}") from None
    return data
