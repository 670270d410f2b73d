"""Fuzz family ``checkpoint``: training checkpoints, valid and malformed, fed to ``load_trained_model`` (what
the exporters read), ``TrainingRun.resume``, ``export --format nir``, ``compile``, ``run --backend float`` and
``train --resume``.

The base checkpoint is a small digits MLP (64 -> 8 -> 8 -> 10, T-BSO with Adam for the full-precision part)
after one optimizer step on seeded gradients, so that every optimizer state exists; it is built once, in
the parent of the forked cases (:func:`base_document`). Mutations (:data:`MODEL_MUTATIONS`, and
:data:`RESUME_MUTATIONS` that only a resumed run reads): config fields of the wrong type or value, a config
naming another data set than the weights, binary entries that are lists or lack ``bits``, NaN/Inf or complex
weights, negative BatchNorm variances, an Adam state without ``step``, non-finite or string hyperparameters,
an epoch counter of 1e9, a history of the wrong length, a malicious pickle (it would write a marker file),
damaged format fields, truncated files. Bit-flipped files may still load (a flip in a weight's bytes is
just another weight): there a clean error and a normal result are both right. ``accept`` cases run the
valid checkpoint and check that the weights come back bit for bit.
"""

from __future__ import annotations

import copy
import functools
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..checkpoint import FORMAT, FORMAT_VERSION, load_trained_model, model_payload
from ..config import TrainConfig
from ..data import load_dataset
from ..export.nir import from_nir
from ..run import TrainingRun
from ..training import build_network, make_optimizers
from .fuzz_cases import CliResult, FuzzCase, run_cli
from .fuzz_files import CLEAN_REJECTION, rejected_or_ran
from .fuzz_inputs import PickleMarker, without_code_execution

__all__ = ["MODEL_MUTATIONS", "OPERATIONS", "RESUME_MUTATIONS", "base_document", "cases"]

FAMILY = "checkpoint"
CONFIG = TrainConfig(dataset="digits", time_steps=2, epochs=1, hidden=(8, 8), batch_size=64, fp_optimizer="adam",
                     fixed_point_samples=0, reset="zero")
HISTORY_RECORD = {"loss": 1.25, "train_accuracy": 0.5, "flips": {"layers.2": 3}, "flip_rate": {"layers.2": 0.05},
                  "seconds": 0.5, "test_accuracy": 0.5, "train_eval_accuracy": 0.5, "epoch": 1}
ACCEPT_SHARE, BITFLIP_SHARE = 0.15, 0.1


@functools.lru_cache(maxsize=1)
def base_document() -> dict[str, Any]:
    """The valid checkpoint document (module docstring), as ``TrainingRun.save`` writes it."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_network(CONFIG, (64,), 10)
        optimizers = make_optimizers(model, CONFIG)
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter) * 1e-3
        optimizers.step(0)
        rng = torch.get_rng_state()
    return {**model_payload(model), "config": CONFIG.to_dict(), "epoch": 1, "optimizers": optimizers.state_dict(),
            "history": [HISTORY_RECORD], "rng": {"torch": rng},
            "model_info": {"input_shape": [64], "num_classes": 10}}


def _file_document() -> dict[str, Any]:
    """The base document with the format fields ``save_checkpoint`` adds."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "toolkit_version": __version__, **base_document()}


def _torch_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def base_bytes() -> bytes:
    """The bytes of the valid checkpoint file."""
    return _torch_bytes(_file_document())


def _set(*keys: str, value: object) -> Callable[[dict], None]:
    def mutate(document: dict) -> None:
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return mutate


def _config(**fields: object) -> Callable[[dict], None]:
    return lambda document: document["config"].update(fields)


def _each_binary(edit: Callable[[dict, str], None]) -> Callable[[dict], None]:
    return lambda document: [edit(document["binary"], name) for name in list(document["binary"])]


def _full_precision(suffix: str, fill: Callable[[torch.Tensor], object]) -> Callable[[dict], None]:
    def mutate(document: dict) -> None:
        for name in [n for n in document["full_precision"] if n.endswith(suffix)]:
            document["full_precision"][name] = fill(document["full_precision"][name])
    return mutate


def _poke(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def fill(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tensor.view(-1)[0] = value
        return tensor
    return fill


def _adam_state(edit: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda document: [edit(entry) for entry in document["optimizers"]["full_precision"]["state"].values()]


# Mutations of what every reader of a checkpoint's model uses: name -> edit of the document (in place).
MODEL_MUTATIONS: dict[str, Callable[[dict], None]] = {
    "hidden-none": _config(hidden=None), "hidden-string": _config(hidden="8,8"), "hidden-zero": _config(hidden=[0, 8]),
    "hidden-float": _config(hidden=[8.5, 8]), "hidden-huge": _config(hidden=[1 << 34, 8]),
    "seed-string": _config(seed="x"), "seed-none": _config(seed=None), "seed-float": _config(seed=1.5),
    "device-cuda-abc": _config(device="cuda:abc"), "device-int": _config(device=3),
    "tau-string": _config(tau="2"), "tau-nan": _config(tau=math.nan), "lr-inf": _config(lr=math.inf),
    "time-steps-zero": _config(time_steps=0), "epochs-negative": _config(epochs=-1),
    "dataset-unknown": _config(dataset="imagenet"), "dataset-int": _config(dataset=5),
    "dataset-mnist": _config(dataset="mnist"), "dataset-cifar10": _config(dataset="cifar10"),
    "method-unknown": _config(method="sgd"), "unknown-key": _config(colour="blue"),
    "config-version": _config(version=99), "config-list": _set("config", value=[1, 2]),
    "binary-list": _each_binary(lambda binary, name: binary.__setitem__(name, [1, 0, 1])),
    "binary-no-bits": _each_binary(lambda binary, name: binary[name].pop("bits")),
    "binary-no-shape": _each_binary(lambda binary, name: binary[name].pop("shape")),
    "binary-float-bits": _each_binary(lambda binary, name: binary[name].update(bits=binary[name]["bits"].float())),
    "binary-huge-shape": _each_binary(lambda binary, name: binary[name].update(shape=[1 << 40, 8])),
    "binary-string-shape": _each_binary(lambda binary, name: binary[name].update(shape=["8", "8"])),
    "binary-wrong-shape": _each_binary(lambda binary, name: binary[name].update(shape=[4, 16])),
    "weight-nan": _full_precision("0.weight", _poke(math.nan)), "weight-inf": _full_precision("bias", _poke(math.inf)),
    "weight-complex": _full_precision("0.weight", lambda tensor: tensor.to(torch.complex64)),
    "weight-string": _full_precision("0.weight", lambda tensor: "weights"),
    "weight-list": _full_precision("0.weight", lambda tensor: tensor.tolist()),
    "weight-wrong-shape": _full_precision("0.weight", lambda tensor: tensor[:, :-1].clone()),
    "running-var-negative": _full_precision("running_var", _poke(-1.0)),
    "running-mean-nan": _full_precision("running_mean", _poke(math.nan)),
    "weight-missing": lambda document: document["full_precision"].pop(next(iter(document["full_precision"]))),
    "weight-extra": _set("full_precision", "extra.weight", value=torch.zeros(3)),
    "epoch-string": _set("epoch", value="3"), "epoch-negative": _set("epoch", value=-1),
    "model-info-classes-zero": _set("model_info", "num_classes", value=0),
    "model-info-negative-shape": _set("model_info", "input_shape", value=[-64]),
    "model-info-other-shape": _set("model_info", "input_shape", value=[1, 28, 28]),
    "format-missing": lambda document: document.pop("format"), "format-version": _set("format_version", value=7),
    "entries-missing": lambda document: document.pop("binary"),
    "malicious-pickle": _set("history", value=[PickleMarker()]),
    "not-a-dict": lambda document: document.clear(),
}
# Mutations that only a resumed run reads (the exporters ignore the optimizer state, history and RNG).
RESUME_MUTATIONS: dict[str, Callable[[dict], None]] = {
    "adam-no-step": _adam_state(lambda entry: entry.pop("step")),
    "adam-no-exp-avg": _adam_state(lambda entry: entry.pop("exp_avg")),
    "adam-exp-avg-wrong-shape": _adam_state(lambda entry: entry.update(exp_avg=torch.zeros(3))),
    "adam-exp-avg-nan": _adam_state(lambda entry: entry.update(exp_avg=entry["exp_avg"] * math.nan)),
    "lr-string": lambda document: document["optimizers"]["full_precision"]["param_groups"][0].update(lr="fast"),
    "lr-nan": lambda document: document["optimizers"]["full_precision"]["param_groups"][0].update(lr=math.nan),
    "betas-short": lambda document: document["optimizers"]["full_precision"]["param_groups"][0].update(betas=[0.9]),
    "groups-missing": lambda document: document["optimizers"]["binary"].pop("param_groups"),
    "state-list": _set("optimizers", "binary", "state", value=[1, 2]),
    "binary-no-momentum": lambda document: [entry.pop("momentum") for entry in
                                            document["optimizers"]["binary"]["state"].values()],
    "schedules-dict": _set("optimizers", "schedules", value={}),
    "optimizers-string": _set("optimizers", value="adam"),
    "epoch-1e9": _set("epoch", value=10**9), "history-short": _set("history", value=[]),
    "history-strings": _set("history", value=["epoch 1"]),
    "history-no-seconds": lambda document: document["history"][0].pop("seconds"),
    "history-loss-string": lambda document: document["history"][0].update(loss="low"),
    "rng-string": _set("rng", value="seed"),
    "rng-short": _set("rng", "torch", value=torch.zeros(5, dtype=torch.uint8)),
}


def _write(work: Path, mutate: Callable[[dict], None] | None) -> Path:
    path = work / "checkpoint.pt"
    if mutate is None:
        path.write_bytes(base_bytes())
        return path
    document = copy.deepcopy(_file_document())
    mutate(document)
    path.write_bytes(_torch_bytes(document if document else [1, 2, 3]))  # "not-a-dict": a list
    return path


def _same_weights(model: torch.nn.Module) -> bool:
    expected = base_document()
    state = model.state_dict()
    return all(torch.equal(state[name], value) for name, value in expected["full_precision"].items())


# The operations on a checkpoint: name -> (work dir -> result). Those marked resume read the optimizer state.
OPERATIONS: dict[str, Callable[[Path], object]] = {
    "load_trained_model": lambda work: load_trained_model(work / "checkpoint.pt"),
    "resume": lambda work: TrainingRun.resume(work),
    "cli-export-nir": lambda work: run_cli(["export", "checkpoint.pt", "--format", "nir", "--out", "model.nir"]),
    "cli-compile": lambda work: run_cli(["compile", "checkpoint.pt", "--time-steps", "2", "--out", "net.npz"]),
    "cli-train-resume": lambda work: run_cli(["train", "--resume", "--out", str(work), "--epochs", "1",
                                              "--no-progress"]),
}
RESUME_OPERATIONS = ("resume", "cli-train-resume")
ALWAYS_ERROR = {"cli-run-float": lambda work: run_cli(["run", "checkpoint.pt", "--backend", "float", "--inputs",
                                                       "x.npy", "--out", "out.npz"])}


def _verify(operation: str) -> Callable[[object, Path], bool]:
    def verify(result: object, work: Path) -> bool:
        if operation == "load_trained_model":
            return result.epoch == 1 and _same_weights(result.model)
        if operation == "resume":
            return result.epoch == 1 and _same_weights(result.model)
        if operation == "cli-export-nir":
            return from_nir(work / "model.nir").output_shape == (10,)
        return isinstance(result, CliResult) and result.code == 0
    return verify


def _completed(result: object, work: Path) -> bool:
    """A bit-flipped checkpoint's verify: refused cleanly, or the operation completed (a flip in a weight's
    bytes is another valid weight, which no reader can tell)."""
    return result == CLEAN_REJECTION or not isinstance(result, CliResult | str) or result.code == 0


def _case(operation: str, mutation: str | None, seed: int, damage: str | None = None) -> FuzzCase:
    mutate = None if mutation is None else {**MODEL_MUTATIONS, **RESUME_MUTATIONS}[mutation]
    call = OPERATIONS.get(operation) or ALWAYS_ERROR[operation]

    def action(work: Path) -> object:
        path = _write(work, mutate)
        np.save(work / "x.npy", np.random.default_rng(seed).random((2, 3, 64)))
        if damage is None:
            return without_code_execution(lambda: call(work))
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(seed)
        if damage == "truncate":
            path.write_bytes(bytes(data[:int(rng.integers(0, len(data) - 1))]))
            return without_code_execution(lambda: call(work))
        for position in rng.integers(0, len(data) * 8, size=int(rng.integers(1, 9))):
            data[position // 8] ^= 1 << (position % 8)
        path.write_bytes(bytes(data))
        return without_code_execution(lambda: rejected_or_ran(lambda: call(work)))

    name = f"{operation}:{damage or mutation or 'valid'}/{seed}"
    if damage == "bitflip":
        return FuzzCase(FAMILY, name, action, "accept", _completed)
    if mutation is None and damage is None and operation in OPERATIONS:
        return FuzzCase(FAMILY, name, action, "accept", _verify(operation))
    return FuzzCase(FAMILY, name, action, "error")


def cases(rng: np.random.Generator, count: int) -> list[FuzzCase]:
    """``count`` cases drawn from ``rng`` (deterministic): about 15% valid checkpoints (accept), 10% bit flips
    (either outcome), the rest malformed checkpoints on every operation (resume mutations on resumed runs)."""
    base_document()
    base_bytes()
    load_dataset("digits")  # loads scikit-learn once, in the parent of the forked cases
    operations = sorted(OPERATIONS)
    out: list[FuzzCase] = []
    for _ in range(count):
        seed, draw = int(rng.integers(1 << 30)), rng.random()
        operation = str(rng.choice(operations))
        if draw < ACCEPT_SHARE:
            out.append(_case(operation, None, seed))
        elif draw < ACCEPT_SHARE + BITFLIP_SHARE:
            out.append(_case(operation, None, seed, "bitflip"))
        elif draw < 0.3:
            out.append(_case(operation, None, seed, "truncate"))
        elif draw < 0.33:
            out.append(_case("cli-run-float", str(rng.choice(sorted(MODEL_MUTATIONS))), seed))
        elif draw < 0.55:
            out.append(_case(str(rng.choice(RESUME_OPERATIONS)), str(rng.choice(sorted(RESUME_MUTATIONS))), seed))
        else:
            out.append(_case(operation, str(rng.choice(sorted(MODEL_MUTATIONS))), seed))
    return out
