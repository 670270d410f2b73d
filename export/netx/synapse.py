"""The integers of a netx synapse in the terms of docs/fixed-point.md §4.5 - §4.7 (used by ``from_netx``).

- :func:`netx_dense_synapse`: what Lava's ``Dense`` computes from a netx ``dense`` layer's weights, after
  lava-dl's ``optimize_weight_bits``;
- :func:`floor_representation`: a (weight, exponent) pair of a floor-rounding layer that computes the same
  synaptic input for every input.
"""

from __future__ import annotations

import math

import numpy as np
from bso_deploy.hardware.simulator import dense_weight_int
from bso_deploy.hardware.spec import SPEC

__all__ = ["floor_representation", "netx_dense_synapse"]

_NETX_WEIGHT_RANGE = (-256, 254)  # beyond it netx's optimize_weight_bits clips with a printed warning


def netx_dense_synapse(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """What a netx ``dense`` layer's Lava ``Dense`` computes from the file's integer ``weight`` (n_out, n_in):
    returns ``(effective, shift, num_weight_bits)`` with ``a = floor((effective @ x) / 2**shift)``.

    lava-dl 0.6's ``optimize_weight_bits``: sign mode from the file (max < 0 inhibitory, min >= 0 excitatory,
    else mixed, signed = 1), ``scale = 255 / max`` | ``-256 / min`` | ``min(127 / max, -128 / min)``,
    ``shift = floor(log2 scale) + signed``, ``n`` = the number (<= 8) of zero low bits of every weight, minus
    signed, ``num_weight_bits = 8 - shift - n``, weights ``W << shift`` and ``weight_exp = -shift``. Lava's
    ``PyDenseModelBitAcc`` then detects the sign mode again (min >= 0, max <= 0, else mixed), clips to 8 bits
    and drops ``8 - num_weight_bits + mixed`` low bits (of -W when inhibitory): docs/fixed-point.md §4.5 with
    Lava's ``num_weight_bits``. ValueError (without the file's name; the caller adds it) where netx would clip,
    fail or shift by a negative count."""
    weight = np.asarray(weight, dtype=np.int64)
    max_weight, min_weight = int(weight.max()), int(weight.min())
    if max_weight == 0 and min_weight == 0:
        raise ValueError("all weights are zero: netx's optimize_weight_bits divides by the largest weight and fails")
    low, high = _NETX_WEIGHT_RANGE
    if (max_weight > high and min_weight < 0) or (min_weight < low and max_weight > 0) or max_weight > 255 or \
            min_weight < low:
        raise ValueError(f"weights in [{min_weight}, {max_weight}] leave netx's 8-bit synapse range: netx clips "
                         f"them to [{low}, {high}] (or shifts by a negative count); re-export 8-bit weights")
    if max_weight < 0:
        signed, scale = 0, -256 / min_weight
    elif min_weight >= 0:
        signed, scale = 0, 255 / max_weight
    else:
        signed, scale = 1, min(127 / max_weight if max_weight else math.inf, -128 / min_weight)
    shift = int(np.floor(np.log2(scale))) + signed
    zero_bits = SPEC.weight_bits
    while zero_bits > 0 and np.any(weight % (1 << zero_bits)):
        zero_bits -= 1
    num_weight_bits = SPEC.weight_bits - shift - (zero_bits - signed)
    shifted = weight << shift
    inhibitory, mixed = shifted.max() <= 0 and shifted.min() < 0, shifted.min() < 0 < shifted.max()
    dropped = SPEC.weight_bits - num_weight_bits + int(mixed)
    if dropped < 0:
        raise ValueError(f"netx asks Lava's Dense for {num_weight_bits} weight bits, a negative truncation of "
                         f"{dropped} bits that Lava does not define; re-export even (or fewer-bit) weights")
    magnitude = -shifted if inhibitory else shifted
    clipped = np.clip(magnitude, -(1 << SPEC.weight_bits) * int(mixed), (1 << SPEC.weight_bits) - 1)
    truncated = (clipped >> dropped) << dropped
    return (-truncated if inhibitory else truncated), shift, num_weight_bits


def floor_representation(target: np.ndarray, shift: int) -> tuple[np.ndarray, int] | None:
    """``(weight, weight_exp)`` of a floor-rounding layer (docs/fixed-point.md §4.5, §4.7) whose synaptic input
    is ``floor((target @ x) / 2**shift)`` for every x, or None. Candidates: ``target / 2**k`` with exponent
    ``k - shift`` (exact when every ``target`` is a multiple of ``2**k``: ``floor(t x / 2**s) = floor((t / 2**k) x /
    2**(s - k))``, an exact left shift for k > s), then ``2 target`` with ``-shift - 1``; each must survive the
    §4.5 rule unchanged and keep the exponent in range. Exponent 0 first, then the one nearest to 0."""
    target = np.asarray(target, dtype=np.int64)
    zero_bits = 0
    while zero_bits < 62 and not np.any(target % (1 << (zero_bits + 1))):
        zero_bits += 1
    candidates = [(target >> k, k - shift) for k in range(zero_bits + 1)]
    candidates.append((target * 2, -shift - 1))
    candidates.sort(key=lambda item: (abs(item[1]), item[1] > 0))
    for weight, exponent in candidates:
        if not SPEC.weight_exp_min <= exponent <= SPEC.weight_exp_max:
            continue
        if weight.min() < SPEC.weight_min or weight.max() > SPEC.weight_max:
            continue
        if np.array_equal(dense_weight_int(weight), weight):
            return weight, exponent
    return None
