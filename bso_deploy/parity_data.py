"""Test (or training) samples of a data set as plain arrays, for :func:`~bso_deploy.hardware.parity.check_parity`,
calibration and benchmarks: :func:`dataset_samples`; and the fixed-point input range of an event data set,
:func:`dataset_input_range`.

This joins the training package's data sets (``bso_deploy.data``) to the hardware side, which takes arrays
only, so it lives with the integration modules, not in ``hardware/``.
"""

from __future__ import annotations

import os

import nir
import numpy as np

from bso_deploy.data import load_dataset
from bso_deploy.export.nir.metadata import metadata_float, metadata_text
from bso_deploy.options import EVENT_DATASET_NAMES

__all__ = ["dataset_input_range", "dataset_samples", "event_input_options", "is_event_dataset", "recorded_training"]

EVENT_INPUT_SCALE = 1.0
"""Event counts enter the fixed-point network unscaled: count c is the integer input c (docs/fixed-point.md §10.1)."""


def is_event_dataset(name: str | None) -> bool:
    """Whether data set ``name`` is an event data set (samples: frames of event counts, ``bso_deploy.event_data``)."""
    return name in EVENT_DATASET_NAMES


def dataset_samples(name: str, samples: int, seed: int = 0, root: str | os.PathLike | None = None,
                    split: str = "test", time_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` samples of the ``split`` ("test" or "train", e.g. for calibration) of data set
    ``name`` (``bso_deploy.data``) under ``root``: (inputs float32, labels (samples,) int64). Inputs are
    (samples, *input_shape) for the static data sets, for direct encoding (repeat them over the time steps),
    and the frames of event counts (time_steps, samples, *input_shape) for the event data sets (frame t at step
    t; ``time_steps`` frames, required for them)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    data = getattr(load_dataset(name, root=root, seed=seed, time_steps=time_steps), split)
    count = min(samples, len(data))
    pairs = [data[index] for index in range(count)]
    inputs = np.stack([image.numpy() for image, _ in pairs]).astype(np.float32)
    if is_event_dataset(name):
        inputs = np.ascontiguousarray(inputs.swapaxes(0, 1))  # (samples, T, ...) -> (T, samples, ...)
    return inputs, np.array([int(label) for _, label in pairs], dtype=np.int64)


def dataset_input_range(name: str, time_steps: int, root: str | os.PathLike | None = None) -> int | None:
    """The fixed-point input range of event data set ``name`` binned into ``time_steps`` frames: the largest
    count of any pixel in any frame of its training split (one pass over the files), which the training run's
    fixed-point figures use too (``TrainingRun.integer_range``), at input scale :data:`EVENT_INPUT_SCALE`.
    None for the static data sets (inputs in [0, 1])."""
    if not is_event_dataset(name):
        return None
    return int(load_dataset(name, root=root, time_steps=time_steps).train.largest_count)


def recorded_training(graph: nir.NIRGraph | None) -> tuple[str | None, int | None]:
    """(data set, time steps) that the training run recorded in a NIR graph's metadata (``bso-deploy export``
    writes ``dataset`` and ``time_steps``); None for what is missing (and for no graph, a compiled network)."""
    metadata = {} if graph is None else (graph.metadata or {})
    name = metadata_text(metadata["dataset"]) if "dataset" in metadata else None
    steps = metadata.get("time_steps")
    return name, None if steps is None else int(metadata_float(steps, "graph metadata 'time_steps'"))


def event_input_options(name: str, time_steps: int, root: str | os.PathLike | None, input_scale: float | None,
                        input_range: float | None) -> tuple[float | None, float | None, int | None]:
    """The compile options (input_scale, input_range) that keep an event data set's counts exact, and the
    training split's largest count read for them (None when not read): input scale :data:`EVENT_INPUT_SCALE`
    and input range the largest count (:func:`dataset_input_range`, at least 1), each unless given. The
    integer input is then min(count, input_max) with input_max = min(largest count, 255) (docs/fixed-point.md
    §10.1): counts above the training split's are clipped and counted (``input_clipped``), never silently.
    Static data sets: the given values, and None."""
    if not is_event_dataset(name):
        return input_scale, input_range, None
    largest = None if input_range is not None else dataset_input_range(name, time_steps, root)
    return (EVENT_INPUT_SCALE if input_scale is None else input_scale,
            float(max(1, largest)) if input_range is None else input_range, largest)
