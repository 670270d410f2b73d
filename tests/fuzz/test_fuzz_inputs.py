"""Fuzz family inputs (bso_deploy/bench/fuzz_inputs.py): malformed .npy/.npz inputs, labels, calibration data
and time steps on the command line and the API give clean errors, valid ones the API's exact result; the
array reader and the value checks on arbitrary bytes and values (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.input_checks import SCALE_MISMATCH_FACTOR, check_input_values, check_labels
from family_checks import assert_family_holds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bso_deploy.bench import fuzz_inputs
from bso_deploy.errors import BsoDeployError, InvalidFileError, RangeError
from bso_deploy.input_files import read_array

VALID_NPY = fuzz_inputs._npy_bytes(fuzz_inputs.valid_inputs(0))


def test_seeded_cases_are_clean_or_accepted():
    counts = assert_family_holds(fuzz_inputs, seed=15, count=100)
    assert counts["accepted"] >= 10


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_to_a_file_is_read_or_refused_cleanly(tmp_path, data):
    """Bytes cut, overwritten or appended anywhere: read_array returns a real array or raises a BsoDeployError."""
    raw = bytearray(VALID_NPY)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    raw = raw[:data.draw(st.integers(0, len(raw)))] + data.draw(st.binary(max_size=16))
    path = tmp_path / "x.npy"
    path.write_bytes(bytes(raw))
    try:
        x = read_array(path, "inputs")
    except BsoDeployError as error:
        assert str(error).strip() and "\n" not in str(error)
    else:
        assert x.dtype.kind in "biuf" and not x.dtype.hasobject


def test_the_reader_refuses_what_numpy_would_choke_on(tmp_path):
    for name in ("header-unterminated-string", "empty-file", "object-array", "raw-pickle", "header-huge-shape",
                 "truncated", "npz-two-arrays", "complex"):
        path = tmp_path / f"{name}.npy"
        path.write_bytes(fuzz_inputs.BAD_ARRAYS[name](3))
        with pytest.raises(InvalidFileError, match=str(path)):
            read_array(path, "inputs")
    assert not (tmp_path / fuzz_inputs.MARKER).exists()
    np.save(tmp_path / "ok.npy", np.arange(6.0).reshape(2, 3), allow_pickle=False)
    np.testing.assert_array_equal(read_array(tmp_path / "ok.npy", "inputs"), np.arange(6.0).reshape(2, 3))
    np.savez(tmp_path / "ok.npz", np.asfortranarray(np.arange(6).reshape(2, 3)))
    np.testing.assert_array_equal(read_array(tmp_path / "ok.npz", "inputs"), np.arange(6).reshape(2, 3))


@settings(max_examples=200, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       exact=st.booleans())
def test_values_pass_only_within_their_range(x, exact):
    limit = 1.0 if exact else SCALE_MISMATCH_FACTOR
    try:
        checked = check_input_values(x, "inputs", 1.0, exact=exact)
    except BsoDeployError as error:
        assert "inputs" in str(error)
        assert x.size == 0 or not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > limit
        if isinstance(error, RangeError):
            assert "[0, 1]" in str(error)
    else:
        assert np.all(np.isfinite(checked)) and checked.min() >= 0 and checked.max() <= limit


def test_digits_scale_values_are_refused_naming_the_range():
    digits_like = np.array([[0.0, 3.0, 16.0]])
    with pytest.raises(RangeError, match=r"\[0, 1\].*16"):
        check_input_values(digits_like, "inputs x.npy", 1.0, exact=False)
    np.testing.assert_array_equal(check_input_values(digits_like / 16, "inputs", 1.0, exact=True), digits_like / 16)


@settings(max_examples=150, deadline=None)
@given(labels=hnp.arrays(st.sampled_from([np.int64, np.int8, np.uint16, np.float32, np.bool_]),
                         hnp.array_shapes(max_dims=2, max_side=6)),
       classes=st.integers(1, 12))
def test_labels_pass_only_as_one_class_index_per_sample(labels, classes):
    count = 5
    try:
        checked = check_labels(labels, "y.npy", count, classes)
    except BsoDeployError as error:
        assert "y.npy" in str(error)
        assert (labels.dtype.kind not in "iu" or labels.shape != (count,) or labels.min() < 0
                or labels.max() >= classes)
    else:
        assert checked.dtype == np.int64 and checked.shape == (count,)
        assert 0 <= checked.min() and checked.max() < classes
