"""The scenarios of the on-chip adaptation experiment (docs/onchip-learning.md §19; :mod:`.adaptation` runs them):

- domain shifts of the input distribution (:func:`shift_inputs`, ``AdaptationConfig.shift``): ``invert``
  (the reference scenario of §12), two milder ones, ``rotate`` (every image turned by ``ROTATION_DEGREES``)
  and ``contrast`` (contrast halved around a grey background), ``shift`` (moved two pixels) and ``none``;
- the class-incremental case (``AdaptationConfig.pretrain_classes`` K > 0): offline pretraining sees only the
  classes 0 .. K-1 (:func:`pretraining_subset`), the chip learns the others from a stream of all classes, and
  :func:`class_accuracies` reports the new classes' and the old classes' test accuracies apart.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..options import ADAPTATION_SHIFTS as SHIFTS
from .adaptation_config import check_choice

__all__ = ["CONTRAST_BACKGROUND", "CONTRAST_GAIN", "ROTATION_DEGREES", "class_accuracies", "image_shape",
           "pretraining_subset", "scenario_name", "shift_inputs"]

ROTATION_DEGREES = 20.0  # ``rotate``: counter-clockwise, bilinear, zeros enter at the corners
CONTRAST_GAIN = 0.5  # ``contrast``: x -> CONTRAST_BACKGROUND + CONTRAST_GAIN x (a grey background, half contrast)
CONTRAST_BACKGROUND = 0.25


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of a data set's samples: the last two sizes of images (C, H, W) or (H, W); flat samples (n,)
    are square images (digits: (64,) -> (8, 8))."""
    if len(input_shape) >= 2:
        return int(input_shape[-2]), int(input_shape[-1])
    side = math.isqrt(int(input_shape[0]))
    if side * side != input_shape[0]:
        raise ValueError(f"flat samples of {input_shape[0]} values are no square image: the shift needs (H, W)")
    return side, side


def shift_inputs(x: np.ndarray, shift: str, image_shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    """The distribution shift on float images in [0, 1] (N, H * W) of ``image_shape`` (H, W): ``invert``:
    1 - x; ``rotate``: each image rotated by ROTATION_DEGREES about its centre (bilinear, clipped to [0, 1]);
    ``contrast``: CONTRAST_BACKGROUND + CONTRAST_GAIN x; ``shift``: moved two pixels right and one down (zeros
    enter); ``none``: x."""
    check_choice("shift", shift, SHIFTS)
    x = np.asarray(x, dtype=np.float32)
    if shift == "invert":
        return 1.0 - x
    if shift == "contrast":
        return (CONTRAST_BACKGROUND + CONTRAST_GAIN * x).astype(np.float32)
    images = x.reshape(len(x), *image_shape)
    if shift == "rotate":
        turned = ndimage.rotate(images, ROTATION_DEGREES, axes=(2, 1), reshape=False, order=1, mode="constant")
        return np.clip(turned, 0.0, 1.0).astype(np.float32).reshape(x.shape)
    if shift == "shift":
        moved = np.zeros_like(images)
        moved[:, 1:, 2:] = images[:, :-1, :-2]
        return moved.reshape(x.shape)
    return x.copy()


def pretraining_subset(x: np.ndarray, labels: np.ndarray, pretrain_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, ...) and labels (N,) offline pretraining sees: all for ``pretrain_classes`` 0, else those
    of the classes 0 .. pretrain_classes - 1 (the class-incremental scenario)."""
    if not pretrain_classes:
        return x, labels
    keep = np.asarray(labels) < pretrain_classes
    return x[keep], labels[keep]


def class_accuracies(predictions: np.ndarray, labels: np.ndarray, pretrain_classes: int) -> dict[str, float]:
    """Accuracies of C-way ``predictions`` on the test images of the new classes (label >= pretrain_classes)
    and of the old ones (label < pretrain_classes): {"new_class_accuracy": ..., "old_class_accuracy": ...};
    empty for pretrain_classes 0 (no class is new)."""
    if not pretrain_classes:
        return {}
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    new = labels >= pretrain_classes
    if new.all() or not new.any():
        raise ValueError(f"the test set needs images of classes below and from {pretrain_classes} "
                         "(pretrain_classes): use more eval samples")
    correct = predictions == labels
    return {"new_class_accuracy": float(np.mean(correct[new])), "old_class_accuracy": float(np.mean(correct[~new]))}


def scenario_name(shift: str, pretrain_classes: int) -> str:
    """The result's ``scenario``: the shift, or ``class-incremental`` (``class-incremental+SHIFT`` when the
    stream is shifted too)."""
    if not pretrain_classes:
        return shift
    return "class-incremental" if shift == "none" else f"class-incremental+{shift}"
