"""bso_deploy/parity_data.py: a data set's samples as arrays for parity checks and calibration."""

from __future__ import annotations

import numpy as np
import pytest

from bso_deploy.parity_data import dataset_samples


def test_dataset_samples() -> None:
    inputs, labels = dataset_samples("digits", 12)
    assert inputs.shape == (12, 64) and labels.shape == (12,) and inputs.dtype == np.float32
    assert 0.0 <= inputs.min() and inputs.max() <= 1.0 and labels.dtype == np.int64
    train, _ = dataset_samples("digits", 12, split="train")
    assert train.shape == (12, 64) and not np.array_equal(train, inputs)
    with pytest.raises(ValueError, match="samples"):
        dataset_samples("digits", 0)
    with pytest.raises(ValueError, match="split must be 'test' or 'train', got 'val'"):
        dataset_samples("digits", 3, split="val")
