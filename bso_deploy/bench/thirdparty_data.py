"""The digits inputs of the third-party benchmark networks (``bso_deploy.bench.thirdparty``): images of
bso_deploy's digits split as arrays, and their direct, Poisson event-count and Bernoulli spike encodings."""

from __future__ import annotations

import numpy as np

from ..data import load_dataset

__all__ = ["bernoulli_spikes", "digits_arrays", "event_counts", "repeat_steps"]


def digits_arrays(seed: int, train_samples: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """(train images (N, 64) float32 in [0, 1], train labels, test images, test labels): bso_deploy's split."""
    split = load_dataset("digits", seed=seed)

    def stack(dataset) -> tuple[np.ndarray, np.ndarray]:
        pairs = [dataset[index] for index in range(len(dataset))]
        return (np.stack([image.numpy() for image, _ in pairs]).astype(np.float32),
                np.array([int(label) for _, label in pairs], dtype=np.int64))

    train_x, train_y = stack(split.train)
    test_x, test_y = stack(split.test)
    if train_samples is not None:
        train_x, train_y = train_x[:train_samples], train_y[:train_samples]
    return train_x, train_y, test_x, test_y


def event_counts(images: np.ndarray, steps: int, rate: float, seed: int) -> np.ndarray:
    """(steps, N, 1, 8, 8) float32 integer event counts: Poisson(rate * x) per pixel and one-step bin."""
    rng = np.random.default_rng(seed)
    lam = rate * images.reshape(1, len(images), 1, 8, 8)
    return rng.poisson(np.broadcast_to(lam, (steps, *lam.shape[1:]))).astype(np.float32)


def bernoulli_spikes(images: np.ndarray, steps: int, seed: int, rate: float = 0.5) -> np.ndarray:
    """(steps, N, 64) float32 binary spikes: a spike with probability rate * x per pixel and step."""
    rng = np.random.default_rng(seed)
    return (rng.random((steps, *images.shape)) < rate * images[None]).astype(np.float32)


def repeat_steps(images: np.ndarray, steps: int) -> np.ndarray:
    """(steps, *images.shape) float32: direct input, each image repeated at every step."""
    return np.broadcast_to(images, (steps, *images.shape)).astype(np.float32)
