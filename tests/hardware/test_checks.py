"""hardware/checks.py: the integer field checks of the network format return normalised values and name the
layer, the parameter and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.checks import field_error, int_array, int_scalar, int_shape


def test_field_error_names_layer_and_parameter():
    assert str(field_error("fc", "vth", "is too large")) == "layer 'fc': vth is too large"


def test_int_scalar():
    assert int_scalar("fc", "du", np.uint16(12), 0, 4095, "hint") == 12
    assert type(int_scalar("fc", "du", np.int64(3), 0, 4095, "hint")) is int
    with pytest.raises(ValueError, match=r"^layer 'fc': du must be an integer, got True \(bool\); hint$"):
        int_scalar("fc", "du", True, 0, 4095, "hint")
    with pytest.raises(ValueError, match=r"^layer 'fc': du must be an integer, got 1.0 \(float\); hint$"):
        int_scalar("fc", "du", 1.0, 0, 4095, "hint")
    with pytest.raises(ValueError, match=r"^layer 'fc': du = 4096 is outside \[0, 4095\]; hint$"):
        int_scalar("fc", "du", 4096, 0, 4095, "hint")


def test_int_array_is_a_read_only_int64_copy():
    source = np.array([1, -2, 3], np.int16)
    array = int_array("fc", "bias_mant", source, -4096, 4095, "hint")
    assert array.dtype == np.int64 and not array.flags.writeable
    source[0] = 9
    np.testing.assert_array_equal(array, [1, -2, 3])
    with pytest.raises(ValueError, match=r"^layer 'fc': w must hold integers, got dtype float64; hint$"):
        int_array("fc", "w", np.ones(2), 0, 1, "hint")
    with pytest.raises(ValueError, match=r"^layer 'fc': w has values in \[-1, 5\], outside \[0, 4\]; hint$"):
        int_array("fc", "w", np.array([-1, 5]), 0, 4, "hint")


def test_int_shape():
    assert int_shape("fc", "pool", (2, np.int64(2)), 2) == (2, 2)
    assert int_shape("fc", "padding", [0, 1], 2, minimum=0) == (0, 1)
    with pytest.raises(ValueError, match=r"^layer 'fc': pool must be a tuple of 2 integers >= 1, got \(2,\)$"):
        int_shape("fc", "pool", (2,), 2)
    with pytest.raises(ValueError, match=r"must be a tuple of integers >= 1, got \(1.5,\)"):
        int_shape("fc", "input_shape", (1.5,))
    with pytest.raises(ValueError, match=r"^layer 'fc': input_shape must be a tuple of integers, got 3$"):
        int_shape("fc", "input_shape", 3)
