"""Update rules for binary weights W in {-1, +1}: BSO, T-BSO and Bop.

Each rule exists in two forms. The in-place form (``bso_update_``, ``tbso_update_``, ``bop_update_``), which
the optimizer classes of this package call, overwrites the weight and its state and returns the number of
flipped entries; it allocates one scratch tensor per call. The pure form (``bso_update``, ...) never mutates
its inputs: it runs the in-place form on copies, without autograd, and returns new tensors and the bool mask
of flipped entries (the entries whose sign changed). Shapes: `weight`, `grad` and
`momentum` share one shape; T-BSO keeps one second-moment scalar per binary tensor and time step.

The arithmetic is the reference code's (hamingsi/BSO, modules/Bop.py), with `beta1 = 1 - momentum` and
`beta2 = 1 - variance_decay`: the same float operations in the same order, so float32 results are
bit-identical to it. Writing an operation in place (`m.mul_(c).add_(x)` for `c * m + x`) rounds exactly as
its out-of-place form; do not rewrite the expressions with fused ops (`addcmul_`, `add_(alpha=)`), which may
round differently. The one deliberate deviation: at an exact tie the reference computes
`reverse = -sign(W*m - threshold) = 0`, so it sets W to sign(0) = 0 and (BSO) halves m; here a tie is
"no flip" (strict ">"), W stays in {-1, +1} and m is unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

EXACT_FLOAT32_COUNT = 1 << 24  # a float32 sum of fewer 0/1 terms is exact: every partial sum is an integer < 2**24


def _count(flip: Tensor) -> Tensor:
    """The number of 1.0 entries of a 0/1 float tensor, exactly, as a 0-d float tensor."""
    return flip.sum() if flip.numel() < EXACT_FLOAT32_COUNT else flip.sum(dtype=torch.float64)


def _flip_(weight: Tensor, margin: Tensor, mask: bool = False) -> tuple[Tensor, Tensor | None]:
    """flip = margin > 0 (strict); W[flip] <- -W[flip] in place. `margin` (W * m [/ s] - threshold) is
    overwritten. Returns (number of flips as a 0-d float tensor, the bool mask of flips if `mask` else None).

    The comparison writes 1.0 / 0.0 into the float tensor and W is multiplied by 1 - 2 * flip (exact: W * 1
    and W * -1), because on CPU a comparison into a bool tensor, torch.where and masked writes take several
    times as long as float arithmetic."""
    flip = torch.gt(margin, 0, out=margin)
    count = _count(flip)
    flipped = flip.to(torch.bool) if mask else None
    weight.mul_(flip.mul_(-2.0).add_(1.0))
    return count, flipped


def bso_update_(weight: Tensor, grad: Tensor, momentum: Tensor, *, beta1: float, threshold: float) -> Tensor:
    """One BSO step (momentum reset on flip), in place on `weight` and `momentum`.

        m    <- (1 - beta1) * m + beta1 * g
        flip <- W * m - threshold > 0          (strict: no flip at W * m == threshold)
        W[flip] <- -W[flip]
        m[flip] <- 0

    Args:
        weight: binary weights (entries -1.0 or +1.0), overwritten.
        grad: dL/dW at the binary weights, same shape (not modified).
        momentum: m before the step, same shape, overwritten.
        beta1: 1 - momentum coefficient (the reference's `beta1`, e.g. 1e-3).
        threshold: flip threshold (>= 0), in units of W * m.

    Returns:
        the number of flipped entries, a 0-d float tensor (exact).
    """
    scratch = torch.mul(grad, beta1)
    momentum.mul_(1 - beta1).add_(scratch)
    count, flipped = _flip_(weight, torch.mul(weight, momentum, out=scratch).sub_(threshold), mask=True)
    momentum.masked_fill_(flipped, 0.0)
    return count


def tbso_update_(
    weight: Tensor,
    grad: Tensor,
    momentum: Tensor,
    second_moment: Tensor,
    t: int,
    *,
    beta1: float,
    beta2: float,
    threshold: float,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """One T-BSO step at time-step index t (no momentum reset; temporal-aware threshold), in place on
    `weight`, `momentum` and `second_moment[t]`.

        m    <- (1 - beta1) * m + beta1 * g
        v[t] <- (1 - beta2) * v[t] + mean(beta2 * g * g)        (scalar over the whole tensor, no bias
                                                                 correction, v starts at 0)
        flip <- W * m / (sqrt(v[t]) + eps) - threshold > 0      (strict)
        W[flip] <- -W[flip]

    The effective threshold on W * m is threshold * (sqrt(v[t]) + eps).

    Args:
        weight, grad, momentum: as in `bso_update_`.
        second_moment: v, a 1-d tensor (one entry per time step); entry t is overwritten.
        t: the time-step index, 0 <= t < len(second_moment).
        beta1: 1 - momentum coefficient (e.g. 1e-3).
        beta2: 1 - variance_decay (the reference's `beta2`, e.g. 1e-5).
        threshold: flip threshold (>= 0), in units of W * m / sqrt(v[t]).
        eps: added to sqrt(v[t]) (> 0).

    Returns:
        (flips, new_second_moment_t): the number of flipped entries (0-d float tensor, exact) and the new v[t]
        as computed, in the promoted dtype of v and g (storing
        it into `second_moment` casts it to that tensor's dtype; the flip test uses the uncast value).
    """
    scratch = torch.mul(grad, beta1)
    momentum.mul_(1 - beta1).add_(scratch)
    torch.mul(grad, grad, out=scratch).mul_(beta2)
    new_second_moment_t = (1 - beta2) * second_moment[t] + torch.mean(scratch)
    second_moment[t] = new_second_moment_t
    scale = torch.sqrt(new_second_moment_t) + eps
    count, _ = _flip_(weight, torch.mul(weight, momentum, out=scratch).div_(scale).sub_(threshold))
    return count, new_second_moment_t


def bop_update_(weight: Tensor, grad: Tensor, momentum: Tensor, *, gamma: float, threshold: float) -> Tensor:
    """One Bop step (Helwegen et al. 2019, arXiv:1906.02107; Larq's form of the moving average), in place on
    `weight` and `momentum`.

        m    <- m + gamma * (g - m)
        flip <- W * m - threshold > 0          (strict; Larq maps a tie to +1 through its sign(0) = +1)
        W[flip] <- -W[flip]

    Args:
        weight, grad, momentum: as in `bso_update_`.
        gamma: adaptivity rate in (0, 1] (Bop's 1 - momentum).
        threshold: flip threshold (>= 0).

    Returns:
        the number of flipped entries, a 0-d float tensor (exact).
    """
    scratch = torch.sub(grad, momentum)
    momentum.add_(scratch.mul_(gamma))
    return _flip_(weight, torch.mul(weight, momentum, out=scratch).sub_(threshold))[0]


@torch.no_grad()
def bso_update(
    weight: Tensor, grad: Tensor, momentum: Tensor, *, beta1: float, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """`bso_update_` on copies: returns (new_weight, new_momentum, flipped); the inputs are not mutated."""
    new_weight, new_momentum = weight.clone(), momentum.clone()
    bso_update_(new_weight, grad, new_momentum, beta1=beta1, threshold=threshold)
    return new_weight, new_momentum, new_weight != weight


@torch.no_grad()
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
    """`tbso_update_` on copies, with `second_moment_t` = v[t] a 0-d tensor: returns (new_weight,
    new_momentum, new_second_moment_t, flipped); the inputs are not mutated."""
    new_weight, new_momentum = weight.clone(), momentum.clone()
    _, new_second_moment_t = tbso_update_(
        new_weight, grad, new_momentum, second_moment_t.reshape(1).clone(), 0,
        beta1=beta1, beta2=beta2, threshold=threshold, eps=eps,
    )
    return new_weight, new_momentum, new_second_moment_t, new_weight != weight


@torch.no_grad()
def bop_update(
    weight: Tensor, grad: Tensor, momentum: Tensor, *, gamma: float, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """`bop_update_` on copies: returns (new_weight, new_momentum, flipped); the inputs are not mutated."""
    new_weight, new_momentum = weight.clone(), momentum.clone()
    bop_update_(new_weight, grad, new_momentum, gamma=gamma, threshold=threshold)
    return new_weight, new_momentum, new_weight != weight
