"""bso_deploy/parity_data.py: a data set's samples as arrays for parity checks and calibration."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from test_event_data import NMNIST_SENSOR, expected_frames, synthetic_nmnist

from bso_deploy.parity_data import dataset_input_range, dataset_samples, event_input_options


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


def test_event_samples_are_frames_per_step_and_their_range_the_training_maximum(tmp_path) -> None:
    require("tonic")
    written = synthetic_nmnist(tmp_path, {"Train": 4, "Test": 3})
    inputs, labels = dataset_samples("nmnist", 2, root=tmp_path, time_steps=3)
    assert inputs.shape == (3, 2, 2, 34, 34) and labels.tolist() == [0, 1]
    first_test = sorted(path for path in written if path.parts[-3] == "Test")[0]
    np.testing.assert_array_equal(inputs[:, 0], expected_frames(*written[first_test], 3, NMNIST_SENSOR))
    largest = max(int(expected_frames(*events, 3, NMNIST_SENSOR).max()) for path, events in written.items()
                  if path.parts[-3] == "Train")
    assert dataset_input_range("nmnist", 3, tmp_path) == largest > 1
    assert dataset_input_range("digits", 3) is None
    assert event_input_options("nmnist", 3, tmp_path, None, None) == (1.0, float(largest), largest)
    assert event_input_options("nmnist", 3, tmp_path / "absent", 2.0, 9.0) == (2.0, 9.0, None)  # given: not read
    assert event_input_options("digits", 3, None, None, None) == (None, None, None)
