"""Export a bso-deploy training checkpoint to a NIR file: :func:`export_checkpoint_to_nir`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bso_deploy.checkpoint import load_checkpoint, load_model_payload
from bso_deploy.config import TrainConfig

from . import metadata as keys
from .export import DEFAULT_DT, to_nir
from .files import write_nir

# Per-sample input shape and class count of each data set, for checkpoints that do not record them.
DATASET_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((64,), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}


def model_shape(document: dict[str, Any], config: TrainConfig) -> tuple[tuple[int, ...], int]:
    """(input_shape, num_classes): from the checkpoint's ``model_info`` when present, else the data set."""
    info = document.get("model_info")
    if isinstance(info, dict) and "input_shape" in info and "num_classes" in info:
        return tuple(int(size) for size in info["input_shape"]), int(info["num_classes"])
    if config.dataset not in DATASET_SHAPES:
        raise ValueError(f"the checkpoint's data set {config.dataset!r} has no known input shape; known: "
                         f"{', '.join(DATASET_SHAPES)}")
    return DATASET_SHAPES[config.dataset]


def export_checkpoint_to_nir(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                             dt: float = DEFAULT_DT) -> Path:
    """Load a checkpoint, rebuild its model (BatchNorm in eval mode), export it with :func:`to_nir` and
    write ``out_path`` atomically. Returns the path written. Raises FileNotFoundError for a missing
    checkpoint and CheckpointError (a ValueError) for a corrupt one."""
    from bso_deploy.run import build_network  # heavy (training stack); only needed here

    document = load_checkpoint(checkpoint_path)
    config = TrainConfig.from_dict(document["config"])
    input_shape, num_classes = model_shape(document, config)
    model = build_network(config, input_shape, num_classes)
    load_model_payload(model, document)
    model.eval()
    metadata = {keys.TRAINING_METHOD: config.method, "dataset": config.dataset, "encoder": config.encoder,
                "time_steps": config.time_steps, "binary_choice": config.binary, "model": config.model,
                "checkpoint_epoch": int(document["epoch"])}
    graph = to_nir(model, dt=dt, input_shape=input_shape, metadata=metadata)
    return write_nir(graph, out_path)
