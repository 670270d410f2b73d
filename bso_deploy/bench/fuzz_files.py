"""What the file families of ``bench fuzz`` share (``fuzz_nir``, ``fuzz_netx``, ``fuzz_network``): byte-level
corruption of a file, valid input arrays, the operations a user runs on a model file (through the command line
and the Python API) and the actions of the cases whose right outcome is either a clean error or a normal run.

Every helper is a pure function of its arguments (paths, seeds); the families draw the arguments from their
``rng`` when they generate cases, so a case does the same thing every time it runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ..errors import BsoDeployError
from .fuzz_cases import CliResult, FuzzCase, classify_cli_error, run_cli

__all__ = ["CLEAN_REJECTION", "either_clean_or_ran", "file_cases", "flip_bits", "hdf5_edit", "model_operation",
           "pick", "rejected_or_ran", "replace_dataset", "truncate", "whole_file", "write_inputs"]

# What an "either" action returns when the operation refused its input cleanly (see either_clean_or_ran).
CLEAN_REJECTION = "rejected cleanly"
INPUT_TIME_STEPS = 3
INPUT_SAMPLES = 2
ACCEPT_SHARE = 0.15  # of a file family's cases: valid files that must work
BITFLIP_SHARE = 0.1  # bit-flipped files: a clean error or a normal run


def flip_bits(path: Path, seed: int, count: int) -> None:
    """Flip ``count`` bits of ``path`` at positions drawn from ``seed`` (in place)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.integers(0, len(data) * 8, size=count):
        data[position // 8] ^= 1 << (position % 8)
    path.write_bytes(bytes(data))


def truncate(path: Path, fraction: float) -> None:
    """Keep the first ``fraction`` (0 <= fraction < 1) of ``path``'s bytes."""
    data = path.read_bytes()
    path.write_bytes(data[:math.floor(len(data) * fraction)])


def pick(rng: np.random.Generator, items: list):
    """One of ``items``, drawn from ``rng``."""
    return items[int(rng.integers(len(items)))]


def replace_dataset(group: h5py.Group, key: str, value, **options) -> None:
    """Write ``value`` as dataset ``key`` of ``group``, replacing what is there."""
    if key in group:
        del group[key]
    group.create_dataset(key, data=value, **options)


def hdf5_edit(edit: Callable[[h5py.File, np.random.Generator], None]) -> Callable[[Path, np.random.Generator], Path]:
    """A mutation that opens the HDF5 file for writing and lets ``edit`` change it in place."""
    def mutate(path: Path, rng: np.random.Generator) -> Path:
        with h5py.File(path, "r+") as file:
            edit(file, rng)
        return path
    return mutate


def whole_file(write: Callable[[Path, np.random.Generator], None]) -> Callable[[Path, np.random.Generator], Path]:
    """A mutation that rewrites the whole file with ``write`` (truncation, empty or text files)."""
    def mutate(path: Path, rng: np.random.Generator) -> Path:
        write(path, rng)
        return path
    return mutate


def write_inputs(work: Path, input_shape: tuple[int, ...], seed: int, integer: bool = False) -> Path:
    """Valid inputs for a model of ``input_shape``: (T, batch, *shape) floats in [0, 1] (integers in [0, 255]
    with ``integer``), written to ``work/x.npy``."""
    rng = np.random.default_rng(seed)
    shape = (INPUT_TIME_STEPS, INPUT_SAMPLES, *input_shape)
    x = rng.integers(0, 256, size=shape) if integer else rng.random(shape)
    path = work / "x.npy"
    np.save(path, x)
    return path


# The operations a user runs on a model file, by name: (model path, input shape, work dir) -> result. Those that
# need inputs write valid ones for the shape the model should have (a mutated model is what is under test).
def _cli_run(backend: str) -> Callable[[Path, tuple[int, ...], Path, bool], CliResult]:
    def run(model: Path, input_shape: tuple[int, ...], work: Path, integer: bool) -> CliResult:
        inputs = write_inputs(work, input_shape, 0, integer=integer)
        return run_cli(["run", str(model), "--backend", backend, "--inputs", str(inputs), "--out",
                        str(work / "out.npz")])
    return run


def _cli_parity(model: Path, input_shape: tuple[int, ...], work: Path, integer: bool) -> CliResult:
    inputs = write_inputs(work, input_shape, 0, integer=integer)
    return run_cli(["parity", str(model), "--backends", "sim,torch", "--inputs", str(inputs), "--json"])


def _cli_compile(model: Path, input_shape: tuple[int, ...], work: Path, integer: bool) -> CliResult:
    return run_cli(["compile", str(model), "--out", str(work / "compiled.npz")])


CLI_OPERATIONS: dict[str, Callable[[Path, tuple[int, ...], Path, bool], CliResult]] = {
    "cli-run-float": _cli_run("float"), "cli-run-sim": _cli_run("sim"), "cli-parity": _cli_parity,
    "cli-compile": _cli_compile,
}


def model_operation(name: str, api: dict[str, Callable[[Path], object]], integer: bool = False
                    ) -> Callable[[Path, tuple[int, ...], Path], object]:
    """The operation ``name``: one of :data:`CLI_OPERATIONS` (on float inputs in [0, 1], or integers in
    [0, 255] with ``integer``, for a model that takes integers only) or of the family's Python API calls."""
    if name in api:
        call = api[name]
        return lambda model, input_shape, work: call(model)
    command = CLI_OPERATIONS[name]
    return lambda model, input_shape, work: command(model, input_shape, work, integer)


def rejected_or_ran(run: Callable[[], object]) -> object:
    """Run an operation whose input may or may not still be valid (a bit flip can hit bytes a reader never
    looks at): a clean refusal becomes :data:`CLEAN_REJECTION`, a result is returned, and anything else (a raw
    exception, an error without a one-line message, a command that failed otherwise) raises, a crash."""
    try:
        result = run()
    except BsoDeployError as error:
        message = str(error).strip()
        if message and "\n" not in message:
            return CLEAN_REJECTION
        raise RuntimeError(f"{type(error).__name__} without a one-line message: {message!r}") from error
    if isinstance(result, CliResult) and result.code != 0:
        outcome = classify_cli_error(result)
        if outcome.kind != "clean":
            raise RuntimeError(f"not a clean command-line error: {outcome.detail}")
        return CLEAN_REJECTION
    return result


def either_clean_or_ran(result: object, work: Path) -> bool:
    """The verify of a :func:`rejected_or_ran` case: a clean refusal, or an operation that completed."""
    if isinstance(result, str):
        return result == CLEAN_REJECTION
    return not (isinstance(result, CliResult) and result.code != 0)


def file_cases(family: str, rng: np.random.Generator, count: int, operations: tuple[str, ...],
               mutations: list[str], error_action: Callable[[str, str, int], Callable[[Path], object]],
               bitflip_action: Callable[[str, int, int], Callable[[Path], object]],
               accept_action: Callable[[str, int], Callable[[Path], object]],
               verify_accept: Callable[[str], Callable[[object, Path], bool]]) -> list[FuzzCase]:
    """A file family's ``count`` cases drawn from ``rng``: about :data:`ACCEPT_SHARE` valid files (accept),
    :data:`BITFLIP_SHARE` bit flips of 1 to 64 bits, the rest one mutation each, the ``mutations`` in turn so that
    every one is exercised; each on one of ``operations``. The actions are built from the drawn seed."""
    result = []
    for index in range(count):
        seed, draw = int(rng.integers(1 << 31)), float(rng.random())
        operation = operations[int(rng.integers(len(operations)))]
        if draw < ACCEPT_SHARE:
            result.append(FuzzCase(family, f"valid/{operation}/{index}", accept_action(operation, seed), "accept",
                                   verify_accept(operation)))
        elif draw < ACCEPT_SHARE + BITFLIP_SHARE:
            bits = int(rng.integers(1, 65))
            result.append(FuzzCase(family, f"bitflip-{bits}/{operation}/{index}",
                                   bitflip_action(operation, seed, bits), "accept", either_clean_or_ran))
        else:
            mutation = mutations[index % len(mutations)]
            result.append(FuzzCase(family, f"{mutation}/{operation}/{index}",
                                   error_action(mutation, operation, seed), "error"))
    return result
