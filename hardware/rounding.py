"""Rounding to the nearest integer with halves away from zero: how every float of the compiler becomes an
integer register (docs/fixed-point.md §10).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["round_half_away"]


def round_half_away(x: Any) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (symmetric for negative values), as int64."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)
