"""Fuzz family ``nir``: NIR HDF5 files, valid and mutated, read by ``from_nir``, ``compile_nir`` and the commands
``compile``, ``run --backend float|sim`` and ``parity``.

Every case writes a small valid MLP graph (``build_mlp`` exported by ``to_nir``, sizes and binarization drawn
from its seed) and, unless it is an ``accept`` case, mutates the file with one of :data:`MUTATIONS`: broken
structure (``nodes`` as a dataset, edges that name no node, a cycle back to the Input, an algebraic loop,
two Inputs), declared sizes past the reader's limit (a 256 x 2^28 weight stored in a few bytes), NaN/Inf/complex
or string parameters and binary-layer metadata, unsupported node types, links that loop or leave the file,
file names too long, truncated files. ``bitflip`` cases flip random bits: a flip can land in bytes HDF5
never reads, so a clean error and a normal run are both right there (:func:`.fuzz_files.rejected_or_ran`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import nir
import numpy as np
import torch

from ..export.nir import NIRExportWarning, from_nir, to_nir, write_nir
from ..hardware.compiler import compile_nir
from ..hardware.simulator import simulate
from ..models import build_mlp
from ..neuron import LIFParameters
from .fuzz_cases import CliResult, FuzzCase
from .fuzz_files import (
    file_cases,
    flip_bits,
    hdf5_edit,
    model_operation,
    pick,
    rejected_or_ran,
    replace_dataset,
    truncate,
    whole_file,
)

__all__ = ["MUTATIONS", "OPERATIONS", "cases", "write_model"]

FAMILY = "nir"
HUGE_WEIGHT_SHAPE = (256, 1 << 28)  # the example: 2^36 float32 values, 256 GiB if read


def write_model(work: Path, seed: int, binary: str | None = None, reset: str | None = None
                ) -> tuple[Path, tuple[int, ...], nir.NIRGraph]:
    """A valid graph of a small MLP drawn from ``seed`` at ``work/model.nir``: (path, input shape, graph).
    ``binary`` and ``reset`` (the LIF reset) are drawn too unless given."""
    rng = np.random.default_rng(seed)
    sizes = (int(rng.integers(2, 9)), *(int(size) for size in rng.integers(2, 7, size=rng.integers(1, 3))),
             int(rng.integers(2, 5)))
    binary = binary or ("none", "hidden", "all")[int(rng.integers(3))]
    lif = LIFParameters(reset=reset) if reset is not None else None
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)  # the subtractive reset is noted in metadata
        model = build_mlp(sizes, binary=binary, seed=int(rng.integers(1 << 31)), lif=lif).eval()
        graph = to_nir(model)
    return write_nir(graph, work / "model.nir"), (sizes[0],), graph


# --- mutations: (path, rng) -> the path to give the operation (usually the same file, edited) ---------------

def _nodes(file: h5py.File) -> h5py.Group:
    return file["node/nodes"]


def _names(file: h5py.File, prefix: str = "") -> list[str]:
    return sorted(name for name in _nodes(file) if name.startswith(prefix))


def _edges(file: h5py.File) -> list[list[str]]:
    return [[item.decode() if isinstance(item, bytes) else str(item) for item in edge]
            for edge in np.asarray(file["node/edges"][()]).reshape(-1, 2)]


def _set_edges(file: h5py.File, edges: list[list[str]]) -> None:
    replace_dataset(file["node"], "edges", np.array(edges, dtype=h5py.string_dtype()))


def _nodes_as_dataset(file, rng):
    del file["node/nodes"]
    file["node"].create_dataset("nodes", data=np.arange(3))


def _edge_cycle_to_input(file, rng):
    _set_edges(file, [*_edges(file), [pick(rng, [n for n in _names(file) if n != "input"]), "input"]])


def _algebraic_loop(file, rng):
    affine = pick(rng, _names(file, "affine"))
    _set_edges(file, [*_edges(file), [affine, affine]])


def _edge_to_unknown(file, rng):
    _set_edges(file, [*_edges(file), [pick(rng, _names(file)), f"ghost_{int(rng.integers(100))}"]])


def _edges_wrong_shape(file, rng):
    edges = np.array(_edges(file), dtype=h5py.string_dtype())
    replace_dataset(file["node"], "edges", edges.reshape(-1) if rng.random() < 0.5 else np.tile(edges, (1, 2))[:, :3])


def _edges_numeric(file, rng):
    replace_dataset(file["node"], "edges", rng.integers(0, 5, size=(len(_edges(file)), 2)))


def _second_input(file, rng):
    file.copy(_nodes(file)["input"], _nodes(file), name="input_b")
    _set_edges(file, [*_edges(file), ["input_b", pick(rng, _names(file, "affine"))]])


def _no_output(file, rng):
    del _nodes(file)["output"]
    _set_edges(file, [edge for edge in _edges(file) if "output" not in edge])


def _delete(key: str):
    return lambda file, rng: file["node"].__delitem__(key)


BAD_SHAPES = ([np.inf], [np.nan], [-3], [0], [1 << 40], [3.5], [2 + 1j], [], "abc", [[2, 3], [4, 5]])


def _input_shape(file, rng):
    shape = BAD_SHAPES[int(rng.integers(len(BAD_SHAPES)))]
    replace_dataset(_nodes(file)["input"], "shape", shape if isinstance(shape, str) else np.asarray(shape))


def _huge_weight(file, rng):
    node = _nodes(file)[pick(rng, _names(file, "affine"))]
    del node["weight"]
    shape = HUGE_WEIGHT_SHAPE if rng.random() < 0.5 else (1 << 33, 2)
    node.create_dataset("weight", shape=shape, dtype="f4", chunks=(1, min(shape[1], 1024)), fillvalue=0.5)


def _numeric_field(file, rng) -> tuple[h5py.Group, str]:
    name = pick(rng, [n for n in _names(file) if n not in ("input", "output")])
    node = _nodes(file)[name]
    return node, pick(rng, sorted(key for key in node if key not in ("type", "metadata")))


def _nonfinite(file, rng):
    node, field = _numeric_field(file, rng)
    value = np.array(node[field][()], dtype=np.float64)
    value.reshape(-1)[int(rng.integers(max(value.size, 1)))] = pick(rng, [np.nan, np.inf, -np.inf])
    replace_dataset(node, field, value)


def _complex(file, rng):
    node, field = _numeric_field(file, rng)
    value = np.asarray(node[field][()], dtype=np.float64)
    replace_dataset(node, field, value + 1j * rng.choice([0.0, 0.5], size=value.shape))


def _strings(file, rng):
    node, field = _numeric_field(file, rng)
    text = pick(rng, ["abc", "1.5", ""])
    replace_dataset(node, field, text if rng.random() < 0.5 else np.array([text] * 3, dtype=h5py.string_dtype()))


def _wrong_rank(file, rng):
    node = _nodes(file)[pick(rng, _names(file, "affine"))]
    weight = np.asarray(node["weight"][()])
    replace_dataset(node, "weight", weight.reshape(-1) if rng.random() < 0.5 else weight[None])


def _wrong_length(file, rng):
    name = pick(rng, [n for n in _names(file) if n.startswith(("affine", "lif"))])
    node = _nodes(file)[name]
    field = "bias" if name.startswith("affine") else pick(rng, ["tau", "r", "v_threshold", "v_leak"])
    value = np.asarray(node[field][()])
    replace_dataset(node, field, np.concatenate([value, value[:1]]))


def _bad_tau(file, rng):
    node = _nodes(file)[pick(rng, _names(file, "lif"))]
    tau = np.array(node["tau"][()])
    tau[int(rng.integers(tau.size))] = pick(rng, [0.0, -1e-3])
    replace_dataset(node, "tau", tau)


def _binary_affine(file, rng) -> h5py.Group:
    return _nodes(file)[pick(rng, [n for n in _names(file, "affine") if "metadata/alpha" in _nodes(file)[n]])]


def _bad_alpha(file, rng):
    metadata = _binary_affine(file, rng)["metadata"]
    alpha = np.array(metadata["alpha"][()], dtype=np.float64)
    choice = int(rng.integers(5))
    if choice == 3:
        replace_dataset(metadata, "alpha", alpha + 1j * 0.25)
        return
    bad = alpha[:-1] if choice == 4 else alpha.copy()
    if choice < 3:
        bad[int(rng.integers(bad.size))] = (np.nan, np.inf, -0.5)[choice]
    replace_dataset(metadata, "alpha", bad)


def _bad_signs(file, rng):
    metadata = _binary_affine(file, rng)["metadata"]
    signs = np.array(metadata["signs"][()], dtype=np.float64)
    choice = int(rng.integers(3))
    if choice == 0:
        signs.reshape(-1)[0] = np.nan
    elif choice == 1:
        signs.reshape(-1)[0] = 2
    else:
        signs = signs[:, :-1]
    replace_dataset(metadata, "signs", signs)


def _unsupported_type(file, rng):
    node = _nodes(file)[pick(rng, [n for n in _names(file) if n not in ("input", "output")])]
    replace_dataset(node, "type", pick(rng, ["Conv3d", "Delay", "Foo", "", "NIRGraph"]))


def _type_numeric(file, rng):
    replace_dataset(_nodes(file)[pick(rng, _names(file))], "type", int(rng.integers(100)))


def _missing_field(file, rng):
    name = pick(rng, [n for n in _names(file) if n.startswith(("affine", "lif"))])
    node = _nodes(file)[name]
    del node[pick(rng, ["weight"] if name.startswith("affine") else ["tau", "r", "v_threshold", "v_leak"])]


def _bad_dt(file, rng):
    value = pick(rng, [np.nan, np.inf, -1e-3, 0.0, "fast", 1e-3 + 1e-4j])
    for name in _names(file, "lif"):
        replace_dataset(_nodes(file)[name]["metadata"], "dt", value)


def _bad_reset(file, rng):
    for name in _names(file, "lif"):
        replace_dataset(_nodes(file)[name]["metadata"], "reset", pick(rng, ["sideways", "", "ZERO"]))


def _deep_nesting(file, rng):
    group = _nodes(file).create_group("nest")
    for _ in range(int(rng.integers(100, 400))):
        group.create_dataset("type", data="NIRGraph")
        group = group.create_group("nodes").create_group("nest")


def _link_loop(file, rng):
    group = _nodes(file)[pick(rng, _names(file))]
    if rng.random() < 0.5:
        group["loop"] = file["node"]  # a hard link to an ancestor: the tree is a cycle
    else:
        group["loop"] = h5py.SoftLink("/node/nodes")


def _external_link(file, rng):
    _nodes(file)["outside"] = h5py.ExternalLink(pick(rng, ["/etc/hostname", "missing.h5"]), "/node")


def _empty_weight(file, rng):
    node = _nodes(file)[pick(rng, _names(file, "affine"))]
    replace_dataset(node, "weight", np.zeros((0, np.asarray(node["weight"]).shape[1]), np.float32))


def _long_name(path: Path, rng: np.random.Generator) -> Path:
    return path.with_name("m" * int(rng.integers(256, 1200)) + ".nir")


def _directory(path: Path, rng: np.random.Generator) -> Path:
    target = path.with_name("model_dir.nir")
    target.mkdir()
    return target


MUTATIONS: dict[str, Callable[[Path, np.random.Generator], Path]] = {
    "truncate": whole_file(lambda path, rng: truncate(path, float(rng.uniform(0, 0.97)))),
    "empty-file": whole_file(lambda path, rng: path.write_bytes(b"")),
    "text-file": whole_file(lambda path, rng: path.write_text("nodes: [input, output]\n" * int(rng.integers(1, 9)))),
    "nodes-as-dataset": hdf5_edit(_nodes_as_dataset),
    "nodes-missing": hdf5_edit(_delete("nodes")),
    "edges-missing": hdf5_edit(_delete("edges")),
    "edges-wrong-shape": hdf5_edit(_edges_wrong_shape),
    "edges-numeric": hdf5_edit(_edges_numeric),
    "edge-to-unknown-node": hdf5_edit(_edge_to_unknown),
    "edge-cycle-to-input": hdf5_edit(_edge_cycle_to_input),
    "algebraic-loop": hdf5_edit(_algebraic_loop),
    "second-input": hdf5_edit(_second_input),
    "no-output": hdf5_edit(_no_output),
    "input-shape": hdf5_edit(_input_shape),
    "huge-declared-weight": hdf5_edit(_huge_weight),
    "nonfinite-parameter": hdf5_edit(_nonfinite),
    "complex-parameter": hdf5_edit(_complex),
    "string-parameter": hdf5_edit(_strings),
    "weight-wrong-rank": hdf5_edit(_wrong_rank),
    "parameter-wrong-length": hdf5_edit(_wrong_length),
    "tau-not-positive": hdf5_edit(_bad_tau),
    "alpha-metadata": hdf5_edit(_bad_alpha),
    "signs-metadata": hdf5_edit(_bad_signs),
    "unsupported-node": hdf5_edit(_unsupported_type),
    "type-numeric": hdf5_edit(_type_numeric),
    "field-missing": hdf5_edit(_missing_field),
    "dt-metadata": hdf5_edit(_bad_dt),
    "reset-metadata": hdf5_edit(_bad_reset),
    "deep-nesting": hdf5_edit(_deep_nesting),
    "link-loop": hdf5_edit(_link_loop),
    "external-link": hdf5_edit(_external_link),
    "empty-weight": hdf5_edit(_empty_weight),
    "file-name-too-long": _long_name,
    "directory": _directory,
    "missing-file": lambda path, rng: path.with_name("absent.nir"),
}
NEEDS_BINARY = frozenset({"alpha-metadata", "signs-metadata"})

API: dict[str, Callable[[Path], object]] = {"api-from-nir": from_nir, "api-compile": compile_nir}
OPERATIONS = ("api-from-nir", "api-compile", "cli-compile", "cli-run-float", "cli-run-sim", "cli-parity")


# --- cases ---------------------------------------------------------------------------------------------------

def _error_action(mutation: str, operation: str, seed: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, input_shape, _ = write_model(work, seed, "all" if mutation in NEEDS_BINARY else None)
        target = MUTATIONS[mutation](path, np.random.default_rng(seed))
        return model_operation(operation, API)(target, input_shape, work)
    return action


def _bitflip_action(operation: str, seed: int, bits: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, input_shape, _ = write_model(work, seed)
        flip_bits(path, seed, bits)
        return rejected_or_ran(lambda: model_operation(operation, API)(path, input_shape, work))
    return action


def _accept_action(operation: str, seed: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, input_shape, graph = write_model(work, seed)
        return graph, model_operation(operation, API)(path, input_shape, work)
    return action


def _verify_accept(operation: str) -> Callable[[object, Path], bool]:
    def verify(result: object, work: Path) -> bool:
        graph, value = result
        if operation == "api-from-nir":  # the file read back runs as the graph it was written from
            x = torch.from_numpy(np.random.default_rng(1).random((4, 2, *value.input_shape))).float()
            with torch.no_grad():
                return bool(torch.equal(value(x), from_nir(graph)(x)))
        if operation == "api-compile":  # compiles to the network the graph itself compiles to
            x = np.random.default_rng(1).integers(0, 256, size=(4, 2, *value.input_shape))
            return value == compile_nir(graph) and simulate(value, x).output.shape[:2] == (4, 2)
        if not isinstance(value, CliResult) or value.code != 0:
            return False
        expected = "compiled.npz" if operation == "cli-compile" else ("out.npz" if "run" in operation else None)
        return expected is None or (work / expected).is_file()
    return verify


def cases(rng: np.random.Generator, count: int) -> list[FuzzCase]:
    """``count`` cases: about 15% valid files (accept), 10% bit flips, the rest one mutation each (in turn)."""
    return file_cases(FAMILY, rng, count, OPERATIONS, sorted(MUTATIONS), _error_action, _bitflip_action,
                      _accept_action, _verify_accept)
