"""Pure update rules for binary weights W in {-1, +1}: BSO, T-BSO and Bop.

Each function returns new tensors and never mutates its inputs; the optimizer classes in this package copy
the results into the parameters and their state. Shapes: `weight`, `grad` and `momentum` share one shape;
`second_moment_t` is a 0-d tensor (T-BSO keeps one scalar per binary tensor and time step).

The expressions are written in the same out-of-place form as the reference code (hamingsi/BSO,
modules/Bop.py), with `beta1 = 1 - momentum` and `beta2 = 1 - variance_decay`, so float32 results are
bit-identical to it; do not rewrite them with fused ops (`addcmul_`, `add_(alpha=)`), which may round
differently. The one deliberate deviation: at an exact tie the reference computes
`reverse = -sign(W*m - threshold) = 0`, so it sets W to sign(0) = 0 and (BSO) halves m; here a tie is
"no flip" (strict ">"), W stays in {-1, +1} and m is unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor


def bso_update(
    weight: Tensor, grad: Tensor, momentum: Tensor, *, beta1: float, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One BSO step (momentum reset on flip).

        m    <- (1 - beta1) * m + beta1 * g
        flip <- W * m - threshold > 0          (strict: no flip at W * m == threshold)
        W[flip] <- -W[flip]
        m[flip] <- 0

    Args:
        weight: binary weights (entries -1.0 or +1.0).
        grad: dL/dW at the binary weights, same shape.
        momentum: m before the step, same shape.
        beta1: 1 - momentum coefficient (the reference's `beta1`, e.g. 1e-3).
        threshold: flip threshold (>= 0), in units of W * m.

    Returns:
        (new_weight, new_momentum, flipped) with `flipped` a bool mask of the flipped entries.
    """
    new_momentum = (1 - beta1) * momentum + beta1 * grad
    flipped = (weight * new_momentum - threshold) > 0
    new_weight = torch.where(flipped, -weight, weight)
    return new_weight, new_momentum.masked_fill(flipped, 0.0), flipped


def tbso_update(
    weight: Tensor,
    grad: Tensor,
    momentum: Tensor,
    second_moment_t: Tensor,
    *,
    beta1: float,
    beta2: float,
    threshold: float,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One T-BSO step at time-step index t (no momentum reset; temporal-aware threshold).

        m    <- (1 - beta1) * m + beta1 * g
        v[t] <- (1 - beta2) * v[t] + mean(beta2 * g * g)        (scalar over the whole tensor, no bias
                                                                 correction, v starts at 0)
        flip <- W * m / (sqrt(v[t]) + eps) - threshold > 0      (strict)
        W[flip] <- -W[flip]

    The effective threshold on W * m is threshold * (sqrt(v[t]) + eps).

    Args:
        weight, grad, momentum: as in `bso_update`.
        second_moment_t: v[t], a 0-d tensor, before the step.
        beta1: 1 - momentum coefficient (e.g. 1e-3).
        beta2: 1 - variance_decay (the reference's `beta2`, e.g. 1e-5).
        threshold: flip threshold (>= 0), in units of W * m / sqrt(v[t]).
        eps: added to sqrt(v[t]) (> 0).

    Returns:
        (new_weight, new_momentum, new_second_moment_t, flipped).
    """
    new_momentum = (1 - beta1) * momentum + beta1 * grad
    new_second_moment_t = (1 - beta2) * second_moment_t + torch.mean(beta2 * torch.mul(grad, grad))
    flipped = (weight * new_momentum / (torch.sqrt(new_second_moment_t) + eps) - threshold) > 0
    new_weight = torch.where(flipped, -weight, weight)
    return new_weight, new_momentum, new_second_moment_t, flipped


def bop_update(
    weight: Tensor, grad: Tensor, momentum: Tensor, *, gamma: float, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One Bop step (Helwegen et al. 2019, arXiv:1906.02107; Larq's form of the moving average).

        m    <- m + gamma * (g - m)
        flip <- W * m - threshold > 0          (strict; Larq maps a tie to +1 through its sign(0) = +1)
        W[flip] <- -W[flip]

    Args:
        weight, grad, momentum: as in `bso_update`.
        gamma: adaptivity rate in (0, 1] (Bop's 1 - momentum).
        threshold: flip threshold (>= 0).

    Returns:
        (new_weight, new_momentum, flipped).
    """
    new_momentum = momentum + gamma * (grad - momentum)
    flipped = (weight * new_momentum - threshold) > 0
    new_weight = torch.where(flipped, -weight, weight)
    return new_weight, new_momentum, flipped
