"""Validation of a checkpoint's contents, once, before anything is built from them (issue 15):
:func:`check_document` after the file is read, :func:`load_optimizer_state` when a run resumes.

Every failure is a :class:`CheckpointError` (an :class:`~bso_deploy.errors.InvalidFileError`, so a ValueError)
naming the file and the entry. What is checked:

- structure: ``config`` a dict that :class:`~bso_deploy.config.TrainConfig` accepts (field types included),
  ``epoch`` an integer in [0, config.epochs] equal to the number of ``history`` records, ``binary`` entries
  ``{"bits": uint8 tensor, "shape": [sizes]}``, ``full_precision`` a dict of tensors, ``optimizers`` a dict
  with the ``binary`` and ``full_precision`` optimizer states and a ``schedules`` list, ``model_info`` (when
  present) a positive input shape and class count that match the data set the config names;
- values: every floating tensor finite (weights, BatchNorm statistics, optimizer states), BatchNorm
  running variances >= 0, optimizer hyperparameters finite numbers of the types the run's optimizer has;
- size: the model the config describes fits the memory budget (``bso_deploy.limits``) before it is built;
- an optimizer's per-parameter state holds the keys its class needs (Adam: ``step``, ``exp_avg``,
  ``exp_avg_sq``; T-BSO: ``momentum``, ``second_moment``; BSO, Bop: ``momentum``) with the parameter's shape.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import torch
from torch import Tensor

from .config import TrainConfig
from .errors import InvalidFileError
from .limits import check_memory
from .optim import BSO, TBSO, Bop
from .options import parse_cnn_spec
from .training import Optimizers

__all__ = ["DATASET_SHAPES", "CheckpointError", "check_document", "check_model_size", "check_resumable",
           "load_optimizer_state", "model_shape"]

# Per-sample input shape and class count of each data set, for checkpoints that do not record them.
DATASET_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((64,), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}
# The per-parameter state each optimizer class creates at its first step (a resumed run steps with it).
REQUIRED_STATE: tuple[tuple[type, tuple[str, ...]], ...] = (
    (torch.optim.Adam, ("step", "exp_avg", "exp_avg_sq")), (TBSO, ("momentum", "second_moment")),
    (BSO, ("momentum",)), (Bop, ("momentum",)))
PARAMETER_SHAPED_STATE = ("momentum", "exp_avg", "exp_avg_sq", "momentum_buffer")
# What TrainingRun.metrics and plots.plot_training read from every per-epoch record.
HISTORY_KEYS = ("epoch", "loss", "train_accuracy", "flips", "flip_rate", "seconds")
HISTORY_NUMBERS = ("loss", "train_accuracy", "test_accuracy", "train_eval_accuracy", "seconds")
TRAINING_BYTES_PER_PARAMETER = 16  # float32 weight, gradient and two optimizer states


class CheckpointError(InvalidFileError):
    """A checkpoint file is missing pieces, corrupt, or of another format."""


def _fail(path: str | os.PathLike, message: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {os.fspath(path)}: {message}; train it again (or resume from a good copy)")


def _is_int(value: object, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_tensor(path: str | os.PathLike, name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise _fail(path, f"{name} is a {type(value).__name__}, not a tensor")
    if value.is_complex():
        raise _fail(path, f"{name} holds complex values")
    if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
        raise _fail(path, f"{name} holds {int((~torch.isfinite(value)).sum())} NaN/Inf value(s)")


def _check_weights(path: str | os.PathLike, document: dict[str, Any]) -> None:
    binary, full_precision = document["binary"], document["full_precision"]
    if not isinstance(binary, dict) or not isinstance(full_precision, dict):
        raise _fail(path, "binary and full_precision must be dicts of named weights")
    for name, packed in binary.items():
        if not isinstance(packed, dict) or set(packed) != {"bits", "shape"}:
            raise _fail(path, f"binary weight {name!r} must be a dict with exactly the keys bits and shape")
        bits, shape = packed["bits"], packed["shape"]
        if not isinstance(bits, Tensor) or bits.dtype != torch.uint8 or bits.dim() != 1:
            raise _fail(path, f"binary weight {name!r}: bits must be a 1-D uint8 tensor")
        if not isinstance(shape, list | tuple) or not all(_is_int(size) for size in shape):
            raise _fail(path, f"binary weight {name!r}: shape must be a list of sizes >= 0, got {shape!r}")
        if (math.prod(shape) + 7) // 8 != bits.numel():
            raise _fail(path, f"binary weight {name!r}: shape {list(shape)} needs {(math.prod(shape) + 7) // 8} "
                              f"bytes of bits, the file holds {bits.numel()}")
    for name, value in full_precision.items():
        _check_tensor(path, f"full-precision entry {name!r}", value)
        if name.endswith(("running_var", "step_var")) and value.numel() and float(value.min()) < 0:
            raise _fail(path, f"BatchNorm running variance {name!r} has negative values (min {float(value.min())})")


def _check_optimizer_document(path: str | os.PathLike, optimizers: object) -> None:
    if not isinstance(optimizers, dict) or not isinstance(optimizers.get("schedules"), list):
        raise _fail(path, "optimizers must be a dict with binary, full_precision and a schedules list")
    for role in ("binary", "full_precision"):
        state = optimizers.get(role)
        if (not isinstance(state, dict) or not isinstance(state.get("state"), dict)
                or not isinstance(state.get("param_groups"), list)
                or not all(isinstance(group, dict) for group in state["param_groups"])):
            raise _fail(path, f"optimizers[{role!r}] must be an optimizer state_dict (state, param_groups)")
        for index, entry in state["state"].items():
            if not isinstance(entry, dict):
                raise _fail(path, f"optimizers[{role!r}] state {index!r} is not a dict")
            for key, value in entry.items():
                _check_tensor(path, f"optimizers[{role!r}] state {index!r} {key!r}", value)


def model_shape(document: dict[str, Any], config: TrainConfig, path: str | os.PathLike = "") -> tuple[
        tuple[int, ...], int]:
    """(input_shape, num_classes): from the checkpoint's ``model_info`` when present (checked against the data
    set the config names), else the data set's."""
    known = DATASET_SHAPES.get(config.dataset)
    info = document.get("model_info")
    if info is None:
        if known is None:
            raise _fail(path, f"its data set {config.dataset!r} has no known input shape (known: "
                              f"{', '.join(DATASET_SHAPES)}) and it records none")
        return known
    if (not isinstance(info, dict) or not isinstance(info.get("input_shape"), list | tuple)
            or not info["input_shape"] or not all(_is_int(size, 1) for size in info["input_shape"])
            or not _is_int(info.get("num_classes"), 2)):
        raise _fail(path, f"model_info must hold input_shape (sizes >= 1) and num_classes (>= 2), got {info!r}")
    recorded = (tuple(info["input_shape"]), info["num_classes"])
    # the same values in another shape are the same data: bench data's CNN sees digits' 64 features as (1, 8, 8)
    if known is not None and (math.prod(recorded[0]), recorded[1]) != (math.prod(known[0]), known[1]):
        raise _fail(path, f"its config names data set {config.dataset!r} (inputs {known[0]}, {known[1]} classes) "
                          f"but its weights are for inputs {recorded[0]} and {recorded[1]} classes")
    return recorded


def model_parameters(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Weights of the model ``config`` describes (biases and BatchNorm aside): the MLP's layer products, or the
    conv net's 3x3 kernels and its classifier on the pooled feature map."""
    if config.model == "mlp" or len(input_shape) != 3:
        sizes = (math.prod(input_shape), *config.hidden, num_classes)
        return sum(a * b for a, b in itertools.pairwise(sizes))
    channels, height, width = input_shape
    total = 0
    for kind, size in parse_cnn_spec(config.cnn):
        if kind == "conv":
            total, channels = total + 9 * channels * size, size
        else:
            height, width = height // size, width // size
    return total + channels * height * width * num_classes


def check_model_size(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int, what: str) -> None:
    """ResourceLimitError when the model of ``config`` (weights, gradients and two optimizer states per
    parameter, float32: :data:`TRAINING_BYTES_PER_PARAMETER`) would pass the memory budget; ``what`` names it."""
    parameters = model_parameters(config, input_shape, num_classes)
    check_memory(parameters * TRAINING_BYTES_PER_PARAMETER, f"{what} ({parameters} weights)")


def check_document(document: dict[str, Any], path: str | os.PathLike) -> TrainConfig:
    """Check what a read checkpoint's model is built from (module docstring): config, epoch, weights,
    model_info, size; its TrainConfig. :func:`check_resumable` checks the rest before a run resumes."""
    if not isinstance(document["config"], dict):
        raise _fail(path, f"config is a {type(document['config']).__name__}, not a dict of fields")
    try:
        config = TrainConfig.from_dict(document["config"])
    except (ValueError, TypeError) as error:
        raise _fail(path, f"config: {error}") from error
    if not _is_int(document["epoch"]):
        raise _fail(path, f"epoch {document['epoch']!r} is not a count of completed epochs (an integer >= 0)")
    _check_weights(path, document)
    check_model_size(config, *model_shape(document, config, path), f"the model of checkpoint {os.fspath(path)}")
    return config


def _check_record(path: str | os.PathLike, number: int, record: dict) -> None:
    """One per-epoch record as ``TrainingRun`` writes it: the keys its metrics and plot read, finite numbers."""
    missing = [key for key in HISTORY_KEYS if key not in record]
    if missing or record["epoch"] != number or isinstance(record["epoch"], bool):
        raise _fail(path, f"history record {number} lacks {missing} or is not epoch {number}")
    for key in HISTORY_NUMBERS:
        value = record.get(key)
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)
                                      and math.isfinite(value) and value >= 0):
            raise _fail(path, f"history record {number}: {key} is {value!r}, not a finite number >= 0")
    if not isinstance(record["flip_rate"], dict) or not isinstance(record["flips"], dict):
        raise _fail(path, f"history record {number}: flips and flip_rate must be dicts per binary layer")


def check_resumable(document: dict[str, Any], config: TrainConfig, path: str | os.PathLike) -> None:
    """What a resumed run needs beyond :func:`check_document`: epoch in [0, config.epochs] with one history
    record per epoch, the optimizer states' structure and values, the RNG state."""
    epoch, history = document["epoch"], document["history"]
    if epoch > config.epochs:
        raise _fail(path, f"epoch {epoch} is past the run's {config.epochs} epochs")
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
        raise _fail(path, f"history must be a list of {epoch} per-epoch records (one per completed epoch)")
    for number, record in enumerate(history, start=1):
        _check_record(path, number, record)
    rng = document.get("rng")
    if rng is not None and (not isinstance(rng, dict) or not isinstance(rng.get("torch"), Tensor)
                            or rng["torch"].dtype != torch.uint8):
        raise _fail(path, "rng must be {'torch': uint8 tensor} (torch.get_rng_state())")
    _check_optimizer_document(path, document["optimizers"])


def _check_groups(path: str | os.PathLike, role: str, optimizer: torch.optim.Optimizer, saved: list[dict]) -> None:
    if len(saved) != len(optimizer.param_groups):
        raise _fail(path, f"optimizers[{role!r}] has {len(saved)} parameter groups, the model's optimizer "
                          f"{len(optimizer.param_groups)}")
    for group, current in zip(saved, optimizer.param_groups, strict=True):
        if set(group) != set(current):
            raise _fail(path, f"optimizers[{role!r}] group keys {sorted(group)} != {sorted(current)}")
        for key, value in group.items():
            if key == "params":
                if not isinstance(value, list) or len(value) != len(current["params"]):
                    raise _fail(path, f"optimizers[{role!r}] lists {value!r} as parameters, the model has "
                                      f"{len(current['params'])}")
                continue
            expected = current[key]
            if isinstance(expected, bool) or expected is None or isinstance(expected, str):
                valid = type(value) is type(expected)
            elif isinstance(expected, int | float):
                valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            elif isinstance(expected, tuple | list):
                valid = isinstance(value, tuple | list) and len(value) == len(expected) and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            else:
                valid = True  # a type the optimizer keeps for itself (e.g. a tensor lr): torch checks it
            if not valid:
                raise _fail(path, f"optimizers[{role!r}] hyperparameter {key!r} is {value!r}, expected a value "
                                  f"like {expected!r}")


def _check_required_state(path: str | os.PathLike, role: str, optimizer: torch.optim.Optimizer,
                          saved: dict) -> None:
    required = next((keys for kind, keys in REQUIRED_STATE if isinstance(optimizer, kind)), ())
    for index, entry in saved.items():
        missing = [key for key in required if key not in entry]
        if missing:
            raise _fail(path, f"optimizers[{role!r}] state of parameter {index!r} lacks {missing}")


def _check_parameter_state(path: str | os.PathLike, role: str, optimizer: torch.optim.Optimizer) -> None:
    for index, param in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        entry = optimizer.state.get(param) or {}
        for key in PARAMETER_SHAPED_STATE:
            value = entry.get(key)
            if isinstance(value, Tensor) and tuple(value.shape) != tuple(param.shape):
                raise _fail(path, f"optimizers[{role!r}] state {key!r} of parameter {index} has shape "
                                  f"{tuple(value.shape)}, the parameter {tuple(param.shape)}")


def load_optimizer_state(optimizers: Optimizers, state: dict[str, Any], path: str | os.PathLike) -> None:
    """Load a checked checkpoint's optimizer states into a resumed run's ``optimizers``: parameter groups and
    per-parameter state checked first (module docstring), torch's own errors as CheckpointError."""
    for role in ("binary", "full_precision"):
        _check_groups(path, role, getattr(optimizers, role), state[role]["param_groups"])
        _check_required_state(path, role, getattr(optimizers, role), state[role]["state"])
    if len(state["schedules"]) != len(optimizers.schedules):
        raise _fail(path, f"optimizers holds {len(state['schedules'])} schedules, the config makes "
                          f"{len(optimizers.schedules)}")
    try:
        optimizers.load_state_dict(state)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as error:
        raise _fail(path, f"optimizer state does not fit the model: {str(error).splitlines()[0]}") from error
    for role in ("binary", "full_precision"):
        _check_parameter_state(path, role, getattr(optimizers, role))
