"""Fuzz family ``inputs``: input arrays, labels and calibration data (.npy / .npz), valid and malformed, fed to
``run --backend float|sim|torch``, ``parity --inputs``, ``compile --calibrate-on`` and the Python API
(``quantize_inputs``, ``simulate``, ``TorchReference``, ``check_parity``).

Every case writes a small valid NIR graph (a seeded MLP with 16 inputs and 4 classes, ``to_nir``) and then
the array under test: damaged .npy headers (unterminated strings, garbage, wrong magic), empty and truncated
files, object arrays and pickles (whose unpickling would write a marker file: never allowed), complex,
string and structured dtypes, NaN/Inf, negative values, digits-scale (0..16) and 8-bit (0..255) values where
[0, 1] is expected, wrong ranks and shapes, no samples, headers declaring 10^12 values in a few bytes,
.npz archives with two arrays or damaged bytes, labels of the wrong count, dtype or class range, and
meaningless time steps. Bit-flipped files may still be valid arrays: there a clean refusal and a normal run
are both right. The ``accept`` cases (valid arrays of several dtypes and layouts, values a little
above the range, which saturate with a warning) check the result: ``run --backend sim`` gives exactly what
the API (compile, quantize, simulate) gives.
"""

from __future__ import annotations

import functools
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..export.nir import to_nir, write_nir
from ..hardware.compiler import compile_nir
from ..hardware.input_quantization import quantize_inputs
from ..hardware.network import append_zero_steps
from ..hardware.parity import check_parity
from ..hardware.simulator import simulate
from ..hardware.torch_reference import TorchReference
from ..models import build_mlp
from ..neuron import LIFParameters
from .fuzz_cases import CliResult, FuzzCase, run_cli
from .fuzz_files import either_clean_or_ran, rejected_or_ran

__all__ = ["BAD_ARRAYS", "BAD_LABELS", "BAD_VALUES", "MARKER", "PickleMarker", "cases", "without_code_execution",
           "write_graph"]

FAMILY = "inputs"
INPUTS, CLASSES, STEPS, SAMPLES = 16, 4, 3, 5
MARKER = "unpickled-code-ran"
ACCEPT_SHARE, BITFLIP_SHARE = 0.2, 0.08
GRAPH_VARIANTS = 4


class PickleMarker:
    """A pickle that, if ever loaded, writes the marker file (never allowed: no code from a file runs)."""

    def __reduce__(self):
        return (Path.write_text, (Path(MARKER), "ran"))


@functools.lru_cache(maxsize=GRAPH_VARIANTS)
def graph_bytes(variant: int) -> bytes:
    """A valid NIR graph file of a seeded MLP (16 -> 8 -> 4, binary hidden layer, zero reset), ``variant`` in
    [0, GRAPH_VARIANTS); cached, so that :func:`cases` builds them once in the parent of the forked cases."""
    with torch.random.fork_rng(), tempfile.TemporaryDirectory() as directory:
        model = build_mlp((INPUTS, 8, CLASSES), binary="hidden", seed=variant,
                          lif=LIFParameters(reset="zero")).eval()
        return write_nir(to_nir(model), Path(directory) / "model.nir").read_bytes()


def write_graph(work: Path, seed: int) -> Path:
    """The graph of variant ``seed % GRAPH_VARIANTS`` at ``work/model.nir``."""
    path = work / "model.nir"
    path.write_bytes(graph_bytes(seed % GRAPH_VARIANTS))
    return path


def valid_inputs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((STEPS, SAMPLES, INPUTS))


def _npy_bytes(x: np.ndarray) -> bytes:
    path = Path(f".tmp-{id(x)}.npy")
    np.save(path, x, allow_pickle=True)
    data = path.read_bytes()
    path.unlink()
    return data


def _header_edit(old: bytes, new: bytes) -> Callable[[int], bytes]:
    def make(seed: int) -> bytes:
        return _npy_bytes(valid_inputs(seed)).replace(old, new, 1)
    return make


def _truncated(seed: int) -> bytes:
    data = _npy_bytes(valid_inputs(seed))
    return data[:int(np.random.default_rng(seed).integers(1, len(data) - 1))]


def _huge_header(seed: int) -> bytes:
    return _npy_bytes(valid_inputs(seed)).replace(b"(3, 5, 16)", b"(1000000000000, 16)", 1)


def _values(fill: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Callable[[int], bytes]:
    def make(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        return _npy_bytes(fill(valid_inputs(seed), rng))
    return make


def _poke(value: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def fill(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x.reshape(-1)[int(rng.integers(x.size))] = value
        return x
    return fill


def _npz(arrays: int) -> Callable[[int], bytes]:
    def make(seed: int) -> bytes:
        path = Path(f".tmp-{seed}.npz")
        np.savez(path, *[valid_inputs(seed + k) for k in range(arrays)])
        data = path.read_bytes()
        path.unlink()
        return data
    return make


def _npz_damaged(seed: int) -> bytes:
    data = bytearray(_npz(1)(seed))
    rng = np.random.default_rng(seed)
    for position in rng.integers(40, len(data) - 30, size=8):  # inside the member, not the local header
        data[position] ^= 0xFF
    return bytes(data)


# Malformed input arrays: name -> seed -> the bytes of the file given as --inputs / calibration / API array.
BAD_ARRAYS: dict[str, Callable[[int], bytes]] = {
    "empty-file": lambda seed: b"",
    "not-numpy": lambda seed: b"time,sample,value\n0,0,0.5\n",
    "bad-magic": lambda seed: b"\x93NUMPX" + _npy_bytes(valid_inputs(seed))[6:],
    "bad-version": _header_edit(b"\x93NUMPY\x01\x00", b"\x93NUMPY\x09\x00"),
    "header-unterminated-string": _header_edit(b"'descr': '<f8'", b"'descr': '<f8 "),
    "header-garbage": _header_edit(b"'fortran_order': False", b"'fortran_order': ((((("),
    "header-expression": _header_edit(b"(3, 5, 16)", b"(3*5, 16)"),
    "header-negative-shape": _header_edit(b"(3, 5, 16)", b"(3, -5, 16)"),
    "header-huge-shape": _huge_header,
    "truncated": _truncated,
    "object-array": lambda seed: _npy_bytes(np.array([PickleMarker(), 1.0], dtype=object)),
    "raw-pickle": lambda seed: pickle.dumps(PickleMarker()),
    "complex": lambda seed: _npy_bytes(valid_inputs(seed) + 1j),
    "strings": lambda seed: _npy_bytes(valid_inputs(seed).astype(str)),
    "structured": lambda seed: _npy_bytes(np.zeros((STEPS, SAMPLES, INPUTS), dtype=[("a", "<f4"), ("b", "<i4")])),
    "nan": _values(_poke(np.nan)),
    "inf": _values(_poke(np.inf)),
    "negative": _values(_poke(-0.25)),
    "digits-scale": _values(lambda x, rng: np.round(x * 16)),
    "pixel-scale": _values(lambda x, rng: np.round(x * 255)),
    "rank-1": _values(lambda x, rng: x.reshape(-1)),
    "rank-4": _values(lambda x, rng: x[..., None]),
    "wrong-features": _values(lambda x, rng: x[..., :-1]),
    "no-samples": _values(lambda x, rng: x[:, :0]),
    "scalar": _values(lambda x, rng: np.array(0.5)),
    "npz-two-arrays": _npz(2),
    "npz-damaged": _npz_damaged,
}
# Labels for 5 samples of a 4-class network: name -> labels array.
BAD_LABELS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "too-few": lambda rng: rng.integers(0, CLASSES, SAMPLES - 1),
    "too-many": lambda rng: rng.integers(0, CLASSES, SAMPLES + 3),
    "class-out-of-range": lambda rng: np.full(SAMPLES, CLASSES + int(rng.integers(0, 100))),
    "negative": lambda rng: -rng.integers(1, 5, SAMPLES),
    "float": lambda rng: rng.random(SAMPLES),
    "bool": lambda rng: rng.random(SAMPLES) > 0.5,
    "two-d": lambda rng: rng.integers(0, CLASSES, (SAMPLES, 1)),
    "complex": lambda rng: rng.integers(0, CLASSES, SAMPLES) + 0j,
}
BAD_TIME_STEPS = ("0", "-3", "1000000000")


def without_code_execution(run: Callable[[], object]) -> object:
    """Run an operation, then fail loudly (a crash, whatever it returned) if a file's pickle ever ran."""
    try:
        return run()
    finally:
        if Path(MARKER).exists():
            raise AssertionError("unpickling ran code from a file")


def _cli(kind: str, inputs: str, extra: tuple[str, ...] = ()) -> CliResult:
    model = "model.nir"
    if kind == "run-float":
        argv = ["run", model, "--backend", "float", "--inputs", inputs, "--out", "out.npz"]
    elif kind in ("run-sim", "run-torch"):
        argv = ["run", model, "--backend", kind.removeprefix("run-"), "--inputs", inputs, "--out", "out.npz"]
    elif kind == "parity":
        argv = ["parity", model, "--backends", "sim,torch", "--inputs", inputs, "--json"]
    else:  # "compile": the array is the calibration data
        argv = ["compile", model, "--calibrate-on", inputs, "--out", "net.npz"]
    return run_cli([*argv, *extra])


CLI_KINDS = ("run-float", "run-sim", "run-torch", "parity", "compile")


def _api(kind: str, x: np.ndarray, labels: np.ndarray | None = None) -> object:
    graph = Path("model.nir")
    if kind == "check_parity":
        return check_parity(graph, backends=("sim",), inputs=x, labels=labels, time_steps=None)
    fx_net = compile_nir(graph, time_steps=STEPS)
    if kind == "quantize_inputs":
        return quantize_inputs(fx_net, x)
    if kind == "simulate":
        return simulate(fx_net, x)
    return TorchReference(fx_net, device="cpu").run(x)


API_KINDS = ("quantize_inputs", "simulate", "torch_reference", "check_parity")
# What each API call accepts by its documented contract, so these arrays are no error there: quantize_inputs
# takes any shape and saturates large values (docs/fixed-point.md §10.1); the simulators run zero samples.
API_VALID: dict[str, frozenset[str]] = {
    "quantize_inputs": frozenset({"digits-scale", "pixel-scale", "rank-1", "rank-4", "wrong-features", "no-samples",
                                  "scalar"}),
    "simulate": frozenset({"no-samples"}), "torch_reference": frozenset({"no-samples"}), "check_parity": frozenset(),
}


def _bad_file_case(name: str, seed: int, kind: str) -> FuzzCase:
    def action(work: Path) -> object:
        write_graph(work, seed)
        Path("x.npy").write_bytes(BAD_ARRAYS[name](seed))
        extra = ("--input-range", "1") if kind == "compile" else ()
        return without_code_execution(lambda: _cli(kind, "x.npy", extra))
    return FuzzCase(FAMILY, f"{kind}:{name}/{seed}", action, "error")


def _bad_api_case(name: str, seed: int, kind: str) -> FuzzCase:
    def action(work: Path) -> object:
        write_graph(work, seed)
        Path("x.npy").write_bytes(BAD_ARRAYS[name](seed))
        try:  # what numpy cannot read, the API gets as raw bytes in an array of the file's characters
            x = np.load("x.npy", allow_pickle=False)
        except Exception:  # numpy cannot read it: the array under test is then the file's bytes, an object array
            x = np.array([Path("x.npy").read_bytes()], dtype=object)
        if not isinstance(x, np.ndarray):  # an .npz archive: the API gets the archive object itself
            x = np.array([x], dtype=object)
        if kind in ("simulate", "torch_reference") and x.dtype.kind == "f":
            x = np.round(x * 255)  # integers on the hardware's scale, still malformed in shape or value
        return without_code_execution(lambda: _api(kind, x))
    return FuzzCase(FAMILY, f"{kind}:{name}/{seed}", action, "error")


# Python values that are no array at all, given to the API directly.
BAD_VALUES: dict[str, Callable[[], object]] = {
    "ragged-list": lambda: [[[0.5] * INPUTS], [[0.5] * (INPUTS - 1), [0.1]]], "dict": lambda: {"x": [0.5]},
    "none": lambda: None, "text": lambda: "0.5 0.5", "object": lambda: object(),
}


def _bad_value_case(name: str, seed: int, kind: str) -> FuzzCase:
    def action(work: Path) -> object:
        write_graph(work, seed)
        return _api(kind, BAD_VALUES[name]())
    return FuzzCase(FAMILY, f"{kind}:value-{name}/{seed}", action, "error")


def _bad_labels_case(name: str, seed: int, kind: str) -> FuzzCase:
    def action(work: Path) -> object:
        write_graph(work, seed)
        np.save("x.npy", valid_inputs(seed))
        labels = BAD_LABELS[name](np.random.default_rng(seed))
        if kind == "check_parity":
            return _api(kind, valid_inputs(seed), labels)
        np.save("y.npy", labels)
        return _cli(kind, "x.npy", ("--labels", "y.npy"))
    return FuzzCase(FAMILY, f"labels-{kind}:{name}/{seed}", action, "error")


def _bad_steps_case(steps: str, seed: int, kind: str) -> FuzzCase:
    def action(work: Path) -> object:
        write_graph(work, seed)
        np.save("x.npy", valid_inputs(seed)[0])  # (batch, 16): repeated --time-steps times
        return _cli(kind, "x.npy", ("--time-steps", steps))
    return FuzzCase(FAMILY, f"time-steps-{kind}:{steps}/{seed}", action, "error")


def _bitflip_case(seed: int, kind: str) -> FuzzCase:
    """A valid .npy with 1-8 random bits flipped: a flip in the data is just another value (maybe NaN, maybe out
    of range), one in the header may break it; a clean refusal and a normal run are both right."""
    def action(work: Path) -> object:
        write_graph(work, seed)
        data = bytearray(_npy_bytes(valid_inputs(seed)))
        rng = np.random.default_rng(seed)
        for position in rng.integers(0, len(data) * 8, size=int(rng.integers(1, 9))):
            data[position // 8] ^= 1 << (position % 8)
        Path("x.npy").write_bytes(bytes(data))
        return rejected_or_ran(lambda: _cli(kind, "x.npy", ("--input-range", "1") if kind == "compile" else ()))
    return FuzzCase(FAMILY, f"{kind}:bitflip/{seed}", action, "accept", either_clean_or_ran)


def _expected_sim_output(x: np.ndarray) -> np.ndarray:
    fx_net = compile_nir(Path("model.nir"), time_steps=STEPS)
    return simulate(fx_net, append_zero_steps(quantize_inputs(fx_net, x), fx_net.latency)).output


ACCEPT_LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "float64": lambda x: x, "float32": lambda x: x.astype(np.float32), "float16": lambda x: x.astype(np.float16),
    "binary-uint8": lambda x: (x > 0.5).astype(np.uint8), "bool": lambda x: x > 0.5,
    "fortran-order": np.asfortranarray, "slightly-above-range": lambda x: x * 1.5,
}


def _accept_case(layout: str, seed: int, container: str) -> FuzzCase:
    def inputs() -> np.ndarray:
        return ACCEPT_LAYOUTS[layout](valid_inputs(seed))

    def action(work: Path) -> CliResult:
        write_graph(work, seed)
        np.save("y.npy", np.random.default_rng(seed).integers(0, CLASSES, SAMPLES))
        if container == "npz":
            np.savez("x.npz", inputs())
        else:
            np.save("x.npy", inputs())
        return _cli("run-sim", f"x.{container}", ("--labels", "y.npy"))

    def verify(result: object, work: Path) -> bool:
        return np.array_equal(np.load(work / "out.npz")["output"], _expected_sim_output(inputs()))
    return FuzzCase(FAMILY, f"accept-run-sim:{layout}.{container}/{seed}", action, "accept", verify)


def cases(rng: np.random.Generator, count: int) -> list[FuzzCase]:
    """``count`` cases drawn from ``rng`` (deterministic): about 20% accept, the rest malformed arrays through
    the command line and the API, labels and time steps."""
    for variant in range(GRAPH_VARIANTS):
        graph_bytes(variant)
    out: list[FuzzCase] = []
    bad_arrays, bad_labels = sorted(BAD_ARRAYS), sorted(BAD_LABELS)
    for _ in range(count):
        seed = int(rng.integers(1 << 30))
        draw = rng.random()
        if draw < ACCEPT_SHARE:
            out.append(_accept_case(str(rng.choice(sorted(ACCEPT_LAYOUTS))), seed, str(rng.choice(["npy", "npz"]))))
        elif draw < ACCEPT_SHARE + BITFLIP_SHARE:
            out.append(_bitflip_case(seed, str(rng.choice(CLI_KINDS))))
        elif draw < 0.55:
            out.append(_bad_file_case(str(rng.choice(bad_arrays)), seed, str(rng.choice(CLI_KINDS))))
        elif draw < 0.6:
            out.append(_bad_value_case(str(rng.choice(sorted(BAD_VALUES))), seed, str(rng.choice(API_KINDS))))
        elif draw < 0.75:
            kind = str(rng.choice(API_KINDS))
            out.append(_bad_api_case(str(rng.choice([n for n in bad_arrays if n not in API_VALID[kind]])), seed, kind))
        elif draw < 0.92:
            kind = str(rng.choice(["run-float", "run-sim", "parity", "check_parity"]))
            out.append(_bad_labels_case(str(rng.choice(bad_labels)), seed, kind))
        else:
            kind = str(rng.choice(["run-sim", "run-float"]))
            out.append(_bad_steps_case(str(rng.choice(BAD_TIME_STEPS)), seed, kind))
    return out
