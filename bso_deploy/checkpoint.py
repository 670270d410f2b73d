"""Checkpoints: binary weights bit-packed at 1 bit each, everything else as plain tensors and numbers.

File layout (a ``torch.save`` dict of tensors, lists, dicts and numbers only, read back with
``torch.load(weights_only=True)`` so no arbitrary object is ever unpickled)::

    format          "bso-deploy-checkpoint"
    format_version  1
    toolkit_version bso_deploy.__version__
    config          TrainConfig.to_dict()
    epoch           completed epochs
    binary          {layer weight name: {"bits": uint8 tensor (packbits of W > 0), "shape": [..]}}
    full_precision  the rest of the model's state_dict (float parameters, BatchNorm buffers)
    optimizers      {"binary": state_dict, "full_precision": state_dict, "schedules": [state_dict, ..]}
    history         per-epoch metrics so far
    rng             {"torch": torch RNG state}

Writes are atomic (:mod:`bso_deploy.io`). :func:`load_trained_model` rebuilds a checkpoint's model (for
the exporters, which must not need the training pipeline of :mod:`bso_deploy.run`).
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ._version import __version__
from .checkpoint_checks import DATASET_SHAPES, CheckpointError, check_document, model_shape
from .config import TrainConfig
from .io import atomic_write_bytes
from .layers import BINARY_LAYER_TYPES
from .network import SpikingNetwork
from .training import build_network

__all__ = ["DATASET_SHAPES", "FORMAT", "FORMAT_VERSION", "CheckpointError", "TrainedModel", "binary_weight_names",
           "checkpoint_config", "load_checkpoint", "load_model_payload", "load_trained_model", "model_payload",
           "model_shape", "pack_signs", "save_checkpoint", "unpack_signs"]

FORMAT = "bso-deploy-checkpoint"
FORMAT_VERSION = 1
def pack_signs(weight: Tensor) -> Tensor:
    """Pack a +-1 tensor into uint8 bytes, 1 bit per weight (bit 1 = +1), in row-major order."""
    flat = weight.detach().cpu().reshape(-1)
    if not bool(((flat == 1) | (flat == -1)).all()):
        bad = int((~((flat == 1) | (flat == -1))).sum())
        raise ValueError(f"cannot bit-pack: {bad} of {flat.numel()} weights are not +-1")
    return torch.from_numpy(np.packbits((flat > 0).numpy()))


def unpack_signs(bits: Tensor, shape: list[int] | tuple[int, ...]) -> Tensor:
    """Inverse of :func:`pack_signs`: float32 tensor of +-1 with the given shape."""
    count = int(np.prod(shape)) if len(shape) else 1
    if bits.dtype != torch.uint8 or bits.numel() != (count + 7) // 8:
        raise CheckpointError(f"packed weights hold {bits.numel()} bytes of {bits.dtype}, expected "
                              f"{(count + 7) // 8} uint8 bytes for shape {list(shape)}")
    signs = np.unpackbits(bits.numpy(), count=count).astype(np.float32) * 2.0 - 1.0
    return torch.from_numpy(signs).reshape(tuple(shape))


def binary_weight_names(model: nn.Module) -> list[str]:
    """State-dict names of the +-1 weights stored as bits. Layers trained through latent weights
    (:mod:`bso_deploy.ste`) store their real-valued latent weights instead, as full precision."""
    return [f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, BINARY_LAYER_TYPES) and not parametrize.is_parametrized(module, "weight")]


def model_payload(model: nn.Module) -> dict[str, Any]:
    state = model.state_dict()
    binary_names = binary_weight_names(model)
    binary = {name: {"bits": pack_signs(state[name]), "shape": list(state[name].shape)} for name in binary_names}
    full_precision = {name: value.detach().cpu() for name, value in state.items() if name not in binary}
    return {"binary": binary, "full_precision": full_precision}


def load_model_payload(model: nn.Module, payload: dict[str, Any]) -> None:
    """Load bit-packed binary weights and full-precision tensors into ``model`` (strict: every entry of the
    model's state_dict must be present with the right shape)."""
    state = model.state_dict()
    restored: dict[str, Tensor] = {}
    for name, packed in payload["binary"].items():
        restored[name] = unpack_signs(packed["bits"], packed["shape"])
    restored.update(payload["full_precision"])
    missing = sorted(set(state) - set(restored))
    unexpected = sorted(set(restored) - set(state))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    for name, value in restored.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise CheckpointError(f"{name}: checkpoint shape {tuple(value.shape)} != model shape "
                                  f"{tuple(state[name].shape)}")
    try:
        model.load_state_dict(restored)
    except (RuntimeError, TypeError) as error:  # e.g. a tensor of a dtype that cannot be copied into the parameter
        raise CheckpointError(f"checkpoint weights do not load into the model: {str(error).splitlines()[0]}") from error


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format fields) atomically."""
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "toolkit_version": __version__, **payload}
    buffer = io.BytesIO()
    torch.save(document, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check its format fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train one with `bso-deploy train --out DIR` "
                                "(it writes DIR/checkpoint.pt)")
    try:
        with warnings.catch_warnings():  # torch's unpickler warns about what damaged bytes decode to: the error says it
            warnings.simplefilter("ignore")
            document = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError, KeyError,
            TypeError, IndexError, AttributeError, UnicodeError, struct.error, zlib.error) as error:  # damaged bytes
        raise CheckpointError(f"{path} is not a readable bso-deploy checkpoint (truncated or corrupt?): "
                              f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a bso-deploy checkpoint (format field missing or different)")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {document.get('format_version')}; "
                              f"this bso-deploy reads version {FORMAT_VERSION}")
    required = ("config", "epoch", "binary", "full_precision", "optimizers", "history")
    absent = [key for key in required if key not in document]
    if absent:
        raise CheckpointError(f"{path} lacks the entries {absent}")
    check_document(document, path)
    return document


def checkpoint_config(document: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint (read by :func:`load_checkpoint`, which checked it) was trained with."""
    return TrainConfig.from_dict(document["config"])


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's model with what it was trained with and on."""

    model: SpikingNetwork  # in eval mode (BatchNorm uses its running statistics)
    config: TrainConfig
    input_shape: tuple[int, ...]  # one sample, without the batch axis
    num_classes: int
    epoch: int  # completed training epochs


def load_trained_model(path: str | os.PathLike) -> TrainedModel:
    """Read a checkpoint (:func:`load_checkpoint`) and rebuild its model, weights loaded, in eval mode."""
    document = load_checkpoint(path)
    config = checkpoint_config(document)
    input_shape, num_classes = model_shape(document, config, path)
    model = build_network(config, input_shape, num_classes)
    load_model_payload(model, document)
    model.eval()
    return TrainedModel(model=model, config=config, input_shape=input_shape, num_classes=num_classes,
                        epoch=int(document["epoch"]))
