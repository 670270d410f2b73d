"""Fuzz family ``network``: compiled fixed-point networks (.npz, docs/fixed-point.md §9), valid and mutated, read
by ``FixedPointNetwork.load`` (then ``simulate``) and the commands ``run --backend sim`` and ``parity``.

Every case compiles a small MLP graph (:func:`.fuzz_nir.write_model`) and saves it; all but the ``accept``
cases then mutate the archive with one of :data:`MUTATIONS`: a meta field of the wrong JSON type or outside its
range (names, shapes, decays, exponents, profile, format version, input scale and range), NaN/Infinity or
deeply nested JSON, arrays of the wrong dtype (float, complex, object), shape or range, missing or extra
entries, a header declaring an array far larger than the file, truncated, empty and non-zip files.
``bitflip`` cases flip random bits: either a clean error or a normal run is right there.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..hardware.compiler import compile_nir
from ..hardware.network import FixedPointNetwork
from ..hardware.simulator import simulate
from .fuzz_cases import CliResult, FuzzCase
from .fuzz_files import (
    file_cases,
    flip_bits,
    model_operation,
    pick,
    rejected_or_ran,
    truncate,
    whole_file,
)
from .fuzz_nir import write_model

__all__ = ["MUTATIONS", "OPERATIONS", "cases", "write_network"]

FAMILY = "network"


def write_network(work: Path, seed: int) -> tuple[Path, FixedPointNetwork]:
    """A valid compiled network drawn from ``seed`` at ``work/net.npz``."""
    _, _, graph = write_model(work, seed)
    network = compile_nir(graph)
    return network.save(work / "net.npz"), network


def _load_and_simulate(path: Path) -> object:
    network = FixedPointNetwork.load(path)
    x = np.random.default_rng(0).integers(0, 256, size=(3, 2, *network.input_shape))
    return simulate(network, x)


API: dict[str, Callable[[Path], object]] = {"api-load": FixedPointNetwork.load, "api-simulate": _load_and_simulate}
OPERATIONS = ("api-load", "api-simulate", "cli-run-sim", "cli-parity")


# --- mutations of the archive: (entries, meta, rng) edited in place ---------------------------------------------

def _read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def _write(path: Path, arrays: dict[str, np.ndarray], meta: object, meta_text: str | None = None) -> None:
    text = json.dumps(meta) if meta_text is None else meta_text
    np.savez(path, meta=np.array(text), **arrays)


def _layer(meta: dict, rng: np.random.Generator) -> tuple[int, dict]:
    index = int(rng.integers(len(meta["layers"])))
    return index, meta["layers"][index]


# Values that no field of a layer may hold, by field: wrong JSON types and values outside each field's range.
BAD_LAYER_VALUES: dict[str, list] = {
    "name": ["", 7, None, ["x"]],
    "kind": ["sparse", 3, None],
    "input_shape": [[0], [-4], [1.5], "8", [], None, [[2]], [1 << 40]],
    "binary": ["yes", 2, None],
    "weight_mant": [0, 128, 1.5, "1", None, 1 << 70],
    "weight_exp": [-9, 8, 0.5, None, "0"],
    "du": [-1, 4097, 1.25, None],
    "dv": [-1, 4097, "0", None],
    "bias_delay": [-1, 1.5, None, "1"],
    "reset": ["sideways", 0, None],
    "spiking": ["no", None, 1],
    "stride": [[0, 1], [1], "11", None, [1, 1, 1]],
    "padding": [[-1, 0], [1 << 40, 1 << 40], None, [0]],
    "pool": [[0, 2], [3, 3], None, [2]],
    "shift_rounding": ["up", None, 1],
    "recurrent_binary": ["x", 3],
    "recurrent_weight_mant": [0, 128, 2.5],
    "recurrent_weight_exp": [9, -9, "1"],
}
BAD_NETWORK_VALUES: dict[str, list] = {
    "format_version": [2, 0, "1", None, 1.5],
    "profile": ["truenorth", 1, None, ""],
    "input_shape": [[0], [-1], [1.5], "x", None, [1 << 40], []],
    "layers": [[], {}, "layers", None, [1, 2], [None]],
    "quantization": ["q", [1, 2], {"a": 1}, [[]]],
    "input_scale": [-1.0, 0.0, "255", [1], True],
    "input_max": [0, 256, 1.5, "255", -3],
}


def _bad_layer_field(arrays, meta, rng):
    _, layer = _layer(meta, rng)
    field = pick(rng, sorted(BAD_LAYER_VALUES))
    layer[field] = pick(rng, BAD_LAYER_VALUES[field])
    if field.startswith("recurrent_") and rng.random() < 0.5:
        layer["recurrent_weight_mant"], layer["recurrent_binary"] = 5, True  # set but no recurrent weight


def _bad_network_field(arrays, meta, rng):
    field = pick(rng, sorted(BAD_NETWORK_VALUES))
    meta[field] = pick(rng, BAD_NETWORK_VALUES[field])


def _unknown_layer_field(arrays, meta, rng):
    _layer(meta, rng)[1][pick(rng, ["gain", "__class__", "layers", "alpha"])] = 1


def _missing_field(arrays, meta, rng):
    if rng.random() < 0.5:
        del meta[pick(rng, ["profile", "input_shape", "layers", "format_version"])]
    else:
        _, layer = _layer(meta, rng)
        del layer[pick(rng, ["name", "kind", "input_shape"])]


def _array_key(arrays, rng, names=("weight", "vth", "bias_mant", "bias_exp")) -> str:
    return pick(rng, sorted(key for key in arrays if key.rsplit("/", 1)[-1] in names))


def _array_dtype(arrays, meta, rng):
    key = _array_key(arrays, rng)
    value = arrays[key]
    arrays[key] = pick(rng, [value.astype(np.float64) + 0.5, value.astype(np.complex128) + 1j,
                              value.astype(np.float64) * np.nan, value.astype(str), value.astype(np.float32)])


def _array_range(arrays, meta, rng):
    key = _array_key(arrays, rng)
    value = arrays[key].astype(np.int64).copy()
    value.reshape(-1)[int(rng.integers(max(value.size, 1)))] = pick(rng, [1 << 20, -(1 << 20), 1 << 62])
    arrays[key] = value


def _array_shape(arrays, meta, rng):
    key = _array_key(arrays, rng)
    value = arrays[key]
    arrays[key] = pick(rng, [np.concatenate([value.reshape(-1), value.reshape(-1)[:1]]),
                              np.concatenate([value, value], axis=0), value[None, None],
                              np.zeros((0,) * max(value.ndim, 1), np.int64)])


def _missing_array(arrays, meta, rng):
    del arrays[_array_key(arrays, rng)]


def _recurrent_array(arrays, meta, rng):
    index, _ = _layer(meta, rng)
    n = int(np.asarray(arrays[f"layers/{index}/weight"]).shape[0])
    arrays[f"layers/{index}/recurrent_weight"] = pick(rng, [np.ones((n + 1, n), np.int64), np.full((n, n), 999),
                                                             np.ones((n, n)) * 0.5])


MUTATIONS_ON_ARCHIVE: dict[str, Callable] = {
    "layer-field": _bad_layer_field, "network-field": _bad_network_field, "unknown-layer-field": _unknown_layer_field,
    "missing-field": _missing_field, "array-dtype": _array_dtype, "array-range": _array_range,
    "array-shape": _array_shape, "missing-array": _missing_array, "recurrent-array": _recurrent_array,
}


def _archive(mutate: Callable) -> Callable[[Path, np.random.Generator], Path]:
    def mutation(path: Path, rng: np.random.Generator) -> Path:
        arrays, meta = _read(path)
        mutate(arrays, meta, rng)
        _write(path, arrays, meta)
        return path
    return mutation


def _meta_text(text: Callable[[dict, np.random.Generator], str]) -> Callable[[Path, np.random.Generator], Path]:
    def mutation(path: Path, rng: np.random.Generator) -> Path:
        arrays, meta = _read(path)
        _write(path, arrays, meta, text(meta, rng))
        return path
    return mutation


def _nonfinite_meta(meta, rng):
    field = pick(rng, ["input_scale", "du", "weight_exp", "input_max"])
    target = meta if field in ("input_scale", "input_max") else meta["layers"][0]
    target[field] = "__CONSTANT__"
    return json.dumps(meta).replace('"__CONSTANT__"', pick(rng, ["NaN", "Infinity", "-Infinity", "1e400"]))


def _meta_not_json(meta, rng):
    return pick(rng, ["", "{", "not json", json.dumps(meta)[:-3], "[1, 2, 3]", "null", '"text"'])


def _meta_deep(meta, rng):
    depth = int(rng.integers(2000, 200000))
    return "[" * depth + "]" * depth


def _huge_header(path: Path, rng: np.random.Generator) -> Path:
    """Rewrite one array member with a header declaring a huge shape over the few bytes it holds."""
    arrays, meta = _read(path)
    key = _array_key(arrays, rng, ("weight",))
    buffer = io.BytesIO()
    shape = pick(rng, [(1 << 36,), (256, 1 << 28), (1 << 20, 1 << 20)])
    np.lib.format.write_array_header_2_0(buffer, {"descr": "<i8", "fortran_order": False, "shape": shape})
    arrays.pop(key)
    _write(path, arrays, meta)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{key}.npy", buffer.getvalue() + np.arange(16, dtype=np.int64).tobytes())
    return path


def _meta_wrong_entry(path: Path, rng: np.random.Generator) -> Path:
    arrays, meta = _read(path)
    np.savez(path, meta=pick(rng, [np.arange(3), np.array([json.dumps(meta)] * 2), np.array(1.5)]), **arrays)
    return path


def _foreign_zip(path: Path, rng: np.random.Generator) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(pick(rng, ["meta.npy", "data.pkl", "x.npy"]), b"\x93NUMPY garbage" * int(rng.integers(1, 9)))
    return path


MUTATIONS: dict[str, Callable[[Path, np.random.Generator], Path]] = {
    **{name: _archive(mutate) for name, mutate in MUTATIONS_ON_ARCHIVE.items()},
    "nonfinite-meta": _meta_text(_nonfinite_meta),
    "meta-not-json": _meta_text(_meta_not_json),
    "meta-deeply-nested": _meta_text(_meta_deep),
    "meta-wrong-entry": _meta_wrong_entry,
    "huge-declared-array": _huge_header,
    "foreign-zip": _foreign_zip,
    "truncate": whole_file(lambda path, rng: truncate(path, float(rng.uniform(0, 0.97)))),
    "empty-file": whole_file(lambda path, rng: path.write_bytes(b"")),
    "missing-file": lambda path, rng: path.with_name("absent.npz"),
    "file-name-too-long": lambda path, rng: path.with_name("n" * int(rng.integers(256, 1200)) + ".npz"),
}


# --- cases ---------------------------------------------------------------------------------------------------

def _input_shape(network: FixedPointNetwork) -> tuple[int, ...]:
    return tuple(network.input_shape)


def _error_action(mutation: str, operation: str, seed: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, network = write_network(work, seed)
        target = MUTATIONS[mutation](path, np.random.default_rng(seed))
        return model_operation(operation, API)(target, _input_shape(network), work)
    return action


def _bitflip_action(operation: str, seed: int, bits: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, network = write_network(work, seed)
        flip_bits(path, seed, bits)
        return rejected_or_ran(lambda: model_operation(operation, API)(path, _input_shape(network), work))
    return action


def _accept_action(operation: str, seed: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, network = write_network(work, seed)
        return network, model_operation(operation, API)(path, _input_shape(network), work)
    return action


def _verify_accept(operation: str) -> Callable[[object, Path], bool]:
    def verify(result: object, work: Path) -> bool:
        network, value = result
        if operation == "api-load":
            return value == network
        if operation == "api-simulate":  # the loaded network runs exactly as the one that was saved
            x = np.random.default_rng(0).integers(0, 256, size=(3, 2, *network.input_shape))
            expected = simulate(network, x)
            return bool(np.array_equal(value.output, expected.output) and
                        len(value.spikes) == len(expected.spikes) and
                        all(np.array_equal(got, want) for got, want in zip(value.spikes, expected.spikes)))
        return isinstance(value, CliResult) and value.code == 0 and (
            operation != "cli-run-sim" or (work / "out.npz").is_file())
    return verify


def cases(rng: np.random.Generator, count: int) -> list[FuzzCase]:
    """``count`` cases: about 15% valid files (accept), 10% bit flips, the rest one mutation each (in turn)."""
    return file_cases(FAMILY, rng, count, OPERATIONS, sorted(MUTATIONS), _error_action, _bitflip_action,
                      _accept_action, _verify_accept)
