"""Fuzz family ``netx``: lava-dl netx HDF5 networks, valid and mutated, read by ``from_netx`` and the commands
``run --backend sim`` and ``parity``.

Every case compiles a small MLP graph (:func:`.fuzz_nir.write_model`, reset to zero) for profile loihi with
netx-compatible integers and writes it with ``write_netx``; all but the ``accept`` cases then mutate the file
with one of :data:`MUTATIONS`: the ``layer`` group missing, empty or numbered wrongly, unsupported layer and
neuron types, shapes that are not positive integers or are huge, weights with NaN/Inf/complex/text values,
values past int64 or declared 256 x 2^28, biases and neuron registers out of range, graded spikes, delays,
links that loop or leave the file, a broken ``bso_deploy`` attribute, truncated and foreign files.
``bitflip`` cases flip random bits: either a clean error or a normal run is right there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ..export.netx import from_netx
from ..export.netx.writer import write_netx
from ..hardware.compiler import compile_nir
from ..hardware.network import FixedPointNetwork
from ..hardware.simulator import simulate
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
from .fuzz_nir import write_model

__all__ = ["MUTATIONS", "OPERATIONS", "cases", "write_netx_model"]

FAMILY = "netx"
NETX_ATTEMPTS = 20


def write_netx_model(work: Path, seed: int) -> tuple[Path, FixedPointNetwork]:
    """A valid netx file drawn from ``seed`` at ``work/model.net`` and the network it holds. Some drawn networks
    have no netx form (write_netx says why); the next seeds are tried then, so the file is always valid."""
    for attempt in range(NETX_ATTEMPTS):
        _, _, graph = write_model(work, seed + attempt, reset="zero")
        network = compile_nir(graph, profile="loihi", netx_compatible=True, fold_thresholds=True)
        try:
            return write_netx(network, work / "model.net"), network
        except ValueError:
            continue
    raise RuntimeError(f"no netx-writable network in seeds {seed} ... {seed + NETX_ATTEMPTS - 1}")


API: dict[str, Callable[[Path], object]] = {"api-from-netx": from_netx}
OPERATIONS = ("api-from-netx", "cli-run-sim", "cli-parity")


def _layer(file: h5py.File, rng: np.random.Generator, built: bool = True) -> h5py.Group:
    keys = sorted(file["layer"], key=int)
    return file["layer"][pick(rng, [key for key in keys if not built or "weight" in file["layer"][key]] or keys)]


def _no_layers(file, rng):
    del file["layer"]
    if rng.random() < 0.5:
        file.create_group("layer") if rng.random() < 0.5 else file.create_dataset("layer", data=np.arange(3))


def _renumbered(file, rng):
    last = str(max(int(key) for key in file["layer"]))
    file["layer"].move(last, pick(rng, [str(int(last) + 2), "x", "-1", f"0{last}"]))


def _layer_type(file, rng):
    replace_dataset(_layer(file, rng, built=False), "type", pick(rng, ["pool", "recurrent", "foo", "", "conv3d"]))


def _type_not_text(file, rng):
    replace_dataset(_layer(file, rng, built=False), "type", pick(rng, [3, 1.5, np.arange(3)]))


def _shape(file, rng):
    replace_dataset(_layer(file, rng), "shape", np.asarray(pick(rng, [[0], [-2], [np.inf], [np.nan], [1 << 40],
                                                                 [2, 2, 2, 2], [1.0e30]])))


def _weight_values(file, rng):
    layer = _layer(file, rng)
    weight = np.asarray(layer["weight"][()], dtype=np.float64)
    weight.reshape(-1)[int(rng.integers(weight.size))] = pick(rng, [np.nan, np.inf, -np.inf, 1e30])
    replace_dataset(layer, "weight", weight)


def _weight_dtype(file, rng):
    layer = _layer(file, rng)
    weight = np.asarray(layer["weight"][()])
    choice = int(rng.integers(3))
    if choice == 0:
        replace_dataset(layer, "weight", weight + 0.5j)
    elif choice == 1:
        replace_dataset(layer, "weight", np.array([str(v) for v in weight.reshape(-1)], dtype=h5py.string_dtype()))
    else:
        replace_dataset(layer, "weight", "weights")


def _weight_shape(file, rng):
    """A weight whose rows do not match the layer's shape, or of the wrong rank. (Fewer columns are no mutation
    of the first layer: netx's network input is that Dense's port, whatever its width.)"""
    layer = _layer(file, rng)
    weight = np.asarray(layer["weight"][()])
    replace_dataset(layer, "weight", pick(rng, [np.concatenate([weight, weight[:1]]), weight[None, None],
                                                weight.reshape(-1)[:-1], weight[:-1] if len(weight) > 1 else
                                                weight[:0]]))


def _huge_weight(file, rng):
    layer = _layer(file, rng)
    del layer["weight"]
    shape = pick(rng, [(256, 1 << 28), (1 << 34, 1)])
    layer.create_dataset("weight", shape=shape, dtype="f4", chunks=(1, min(shape[1], 1024)), fillvalue=1.0)


def _bias(file, rng):
    layer = _layer(file, rng)
    bias = np.asarray(layer["bias"][()]) if "bias" in layer else np.zeros(1, np.int64)
    replace_dataset(layer, "bias", pick(rng, [bias + 100000, bias - 100000, np.concatenate([bias, bias[:1], bias[:1]]),
                                        bias.astype(np.float64) * np.nan]))


def _neuron_field(file, rng):
    neuron = _layer(file, rng)["neuron"]
    field, values = pick(rng, [("iDecay", [0, 4097, 1.5, -3, np.nan]), ("vDecay", [-1, 4097, 2.5]),
                                ("vThMant", [-1, 0.5, np.nan, 1 << 40]), ("refDelay", [5, -1]),
                                ("gradedSpike", [True, np.array([1, 1])]), ("weight_exp", [3, -2])])
    replace_dataset(neuron, field, pick(rng, values))


def _neuron_type(file, rng):
    replace_dataset(_layer(file, rng)["neuron"], "type", np.array([pick(rng, [b"RF", b"ADRF", b"SIGMA", b""])]))


def _neuron_missing(file, rng):
    layer = _layer(file, rng)
    del layer["neuron"]
    if rng.random() < 0.5:
        layer.create_dataset("neuron", data=np.arange(4))


def _field_missing(file, rng):
    layer = _layer(file, rng)
    del layer[pick(rng, ["weight", "shape", "type"])]


def _neuron_field_missing(file, rng):
    del _layer(file, rng)["neuron"][pick(rng, ["iDecay", "vDecay", "vThMant", "type"])]


def _delay(file, rng):
    replace_dataset(_layer(file, rng), "delay", np.ones(3))


def _input_bits(file, rng):
    file.attrs["bso_deploy"] = pick(rng, ['{"input_message_bits": 99}', '{"input_message_bits": "8"}',
                                           '{"input_message_bits": -1}', "{not json", "[" * 5000 + "]" * 5000])


def _link(file, rng):
    layer = _layer(file, rng)
    choice = int(rng.integers(3))
    if choice == 0:
        layer["loop"] = file["layer"]
    elif choice == 1:
        layer["weight_link"] = h5py.SoftLink("/layer")
    else:
        file["layer"]["0"].move("neuron", "neuron_moved")
        file["layer"]["0"]["neuron"] = h5py.ExternalLink("elsewhere.net", "/layer/0/neuron")


MUTATIONS: dict[str, Callable[[Path, np.random.Generator], Path]] = {
    "no-layer-group": hdf5_edit(_no_layers), "layers-renumbered": hdf5_edit(_renumbered),
    "layer-type": hdf5_edit(_layer_type), "type-not-text": hdf5_edit(_type_not_text),
    "layer-shape": hdf5_edit(_shape), "weight-values": hdf5_edit(_weight_values),
    "weight-dtype": hdf5_edit(_weight_dtype), "weight-shape": hdf5_edit(_weight_shape),
    "huge-declared-weight": hdf5_edit(_huge_weight), "bias": hdf5_edit(_bias), "neuron-field": hdf5_edit(_neuron_field),
    "neuron-type": hdf5_edit(_neuron_type), "neuron-missing": hdf5_edit(_neuron_missing),
    "field-missing": hdf5_edit(_field_missing), "neuron-field-missing": hdf5_edit(_neuron_field_missing),
    "delay": hdf5_edit(_delay), "bso-deploy-attribute": hdf5_edit(_input_bits), "links": hdf5_edit(_link),
    "truncate": whole_file(lambda path, rng: truncate(path, float(rng.uniform(0, 0.97)))),
    "empty-file": whole_file(lambda path, rng: path.write_bytes(b"")),
    "missing-file": lambda path, rng: path.with_name("absent.net"),
    "file-name-too-long": lambda path, rng: path.with_name("x" * int(rng.integers(256, 1200)) + ".net"),
}


def _error_action(mutation: str, operation: str, seed: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, network = write_netx_model(work, seed)
        target = MUTATIONS[mutation](path, np.random.default_rng(seed))
        return model_operation(operation, API, integer=True)(target, tuple(network.input_shape), work)
    return action


def _bitflip_action(operation: str, seed: int, bits: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, network = write_netx_model(work, seed)
        flip_bits(path, seed, bits)
        return rejected_or_ran(lambda: model_operation(operation, API, integer=True)(
            path, tuple(network.input_shape), work))
    return action


def _accept_action(operation: str, seed: int) -> Callable[[Path], object]:
    def action(work: Path) -> object:
        path, network = write_netx_model(work, seed)
        return network, model_operation(operation, API, integer=True)(path, tuple(network.input_shape), work)
    return action


def _verify_accept(operation: str) -> Callable[[object, Path], bool]:
    def verify(result: object, work: Path) -> bool:
        network, value = result
        if operation == "api-from-netx":  # the network read back spikes exactly as the one written
            x = np.random.default_rng(0).integers(0, 256, size=(4, 2, *network.input_shape))
            expected, got = simulate(network, x), simulate(value, x)
            # A readout comes back as netx runs it: a LIF whose vThMant = vth_max it does not reach (writer docs),
            # so its output is spikes, not v; the spikes of every layer must agree.
            same_output = not network.layers[-1].spiking or bool(np.array_equal(got.output, expected.output))
            return same_output and len(got.spikes) == len(expected.spikes) and \
                all(np.array_equal(a, b) for a, b in zip(got.spikes, expected.spikes))
        return isinstance(value, CliResult) and value.code == 0
    return verify


def cases(rng: np.random.Generator, count: int) -> list[FuzzCase]:
    """``count`` cases: about 15% valid files (accept), 10% bit flips, the rest one mutation each (in turn)."""
    return file_cases(FAMILY, rng, count, OPERATIONS, sorted(MUTATIONS), _error_action, _bitflip_action,
                      _accept_action, _verify_accept)
