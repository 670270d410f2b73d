"""Test (or training) samples of a data set as plain arrays, for :func:`~bso_deploy.hardware.parity.check_parity`,
calibration and benchmarks: :func:`dataset_samples`.

This joins the training package's data sets (``bso_deploy.data``) to the hardware side, which takes arrays
only, so it lives with the integration modules, not in ``hardware/``.
"""

from __future__ import annotations

import os

import numpy as np

from bso_deploy.data import load_dataset

__all__ = ["dataset_samples"]


def dataset_samples(name: str, samples: int, seed: int = 0, root: str | os.PathLike | None = None,
                    split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` samples of the ``split`` ("test" or "train", e.g. for calibration) of data set
    ``name`` (``bso_deploy.data``): (inputs (samples, *input_shape) float32, labels (samples,) int64), for
    direct encoding (repeat them over time_steps)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    data = getattr(load_dataset(name, root=root, seed=seed), split)
    count = min(samples, len(data))
    pairs = [data[index] for index in range(count)]
    return (np.stack([image.numpy() for image, _ in pairs]).astype(np.float32),
            np.array([int(label) for _, label in pairs], dtype=np.int64))
