"""Bounded work: the memory budget that runs and file reads are checked against before they allocate (L0:
the hardware layer, training and the command line share it).

The budget is ``BSO_DEPLOY_MEMORY_LIMIT`` bytes when that environment variable is set (an integer, or a number
with a K, M, G or T suffix, powers of 1024: ``512M``, ``16G``), else :data:`DEFAULT_MEMORY_LIMIT` (8 GiB).
A piece of work whose arrays would need more raises :class:`~bso_deploy.errors.ResourceLimitError` naming the
size it would need, the limit and how to raise it, before anything is allocated.

The estimates count the arrays a run creates, not NumPy's temporaries:

- the simulator and the torch reference (:func:`simulation_bytes`): for T steps and B samples, per layer of
  N neurons, T B N int8 spikes, and with ``record`` T B N int64 u and v each; the last layer's v over time
  (T B N_out int64) and the int64 copy of the inputs (T B N_in);
- float inputs repeated over time (:func:`float_input_bytes`): T B N_in float64.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from .errors import InvalidInputError, ResourceLimitError

__all__ = ["DEFAULT_MEMORY_LIMIT", "MEMORY_LIMIT_VARIABLE", "check_memory", "float_input_bytes", "memory_limit",
           "simulation_bytes"]

MEMORY_LIMIT_VARIABLE = "BSO_DEPLOY_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = 8 * 1024**3
_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
INT64_BYTES = 8
INT8_BYTES = 1


def memory_limit() -> int:
    """The byte budget: ``$BSO_DEPLOY_MEMORY_LIMIT`` (``123``, ``512M``, ``16G``, ...) or 8 GiB."""
    text = os.environ.get(MEMORY_LIMIT_VARIABLE, "").strip().upper().removesuffix("B")
    if not text:
        return DEFAULT_MEMORY_LIMIT
    number, suffix = (text[:-1], text[-1]) if text[-1] in _SUFFIXES else (text, "")
    try:
        value = float(number) * _SUFFIXES[suffix]
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1:
        raise InvalidInputError(f"{MEMORY_LIMIT_VARIABLE}={os.environ[MEMORY_LIMIT_VARIABLE]!r} is not a byte count; "
                                "give e.g. 8589934592, 512M or 16G")
    return int(value)


def _size(byte_count: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if byte_count >= factor:
            return f"{byte_count / factor:.1f} {unit}"
    return f"{byte_count} bytes"


def check_memory(needed: int, what: str) -> None:
    """ResourceLimitError when ``needed`` bytes exceed :func:`memory_limit`; ``what`` names the work."""
    limit = memory_limit()
    if needed > limit:
        raise ResourceLimitError(f"{what} would need {_size(needed)} ({needed} bytes), more than the memory limit "
                                 f"of {_size(limit)}; use fewer time steps or samples, or raise the limit with "
                                 f"{MEMORY_LIMIT_VARIABLE}=BYTES (e.g. 32G)")


def simulation_bytes(steps: int, batch: int, input_size: int, layer_sizes: Iterable[int], record: bool) -> int:
    """Bytes of a simulation's result arrays and int64 inputs (module docstring); exact Python integers."""
    sizes = [int(size) for size in layer_sizes]
    per_neuron = INT8_BYTES + (2 * INT64_BYTES if record else 0)
    cells = int(steps) * int(batch)
    return cells * (sum(sizes) * per_neuron + (sizes[-1] if sizes else 0) * INT64_BYTES
                    + int(input_size) * INT64_BYTES)


def float_input_bytes(steps: int, batch: int, input_size: int) -> int:
    """Bytes of float64 inputs (T, B, *input_shape) with ``input_size`` values per sample."""
    return int(steps) * int(batch) * int(input_size) * INT64_BYTES
