"""Export a bso-deploy training checkpoint to a NIR file: :func:`export_checkpoint_to_nir`."""

from __future__ import annotations

import os
from pathlib import Path

from bso_deploy.checkpoint import load_trained_model

from . import metadata as keys
from .export import to_nir
from .files import write_nir
from .metadata import DEFAULT_DT


def export_checkpoint_to_nir(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                             dt: float = DEFAULT_DT) -> Path:
    """Load a checkpoint, rebuild its model (BatchNorm in eval mode), export it with :func:`to_nir` and
    write ``out_path`` atomically. Returns the path written. Raises FileNotFoundError for a missing
    checkpoint and CheckpointError (a ValueError) for a corrupt one."""
    trained = load_trained_model(checkpoint_path)
    config = trained.config
    metadata = {keys.TRAINING_METHOD: config.method, "dataset": config.dataset, "encoder": config.encoder,
                "time_steps": config.time_steps, "binary_choice": config.binary, "model": config.model,
                "checkpoint_epoch": trained.epoch}
    graph = to_nir(trained.model, dt=dt, input_shape=trained.input_shape, metadata=metadata)
    return write_nir(graph, out_path)
