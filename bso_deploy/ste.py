"""The standard alternative to BSO: latent real-valued weights, straight-through estimator, BPTT + Adam.

:func:`attach_latent_weights` turns every binary layer of a model into a latent-weight layer with
``torch.nn.utils.parametrize``: the layer keeps its type and its ``weight`` still reads as +-1, but that
weight is now computed from a real-valued latent tensor w::

    forward:   W = +1 if w >= 0 else -1
    backward:  dL/dw = dL/dW * 1[|w| <= 1]        (straight-through estimator with clipping)

The latent tensors (``<layer>.parametrizations.weight.original``) are trained by Adam, which keeps two more
32-bit values per weight: 96 bits of training state per binary weight, against BSO's one momentum.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .layers import BINARY_LAYER_TYPES

LATENT_INIT_SCALE = 0.05  # |w| at start: the same signs as the +-1 initialisation, a few Adam steps from a flip


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, latent: Tensor) -> Tensor:
        ctx.save_for_backward(latent)
        return torch.where(latent >= 0, 1.0, -1.0).to(latent.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        (latent,) = ctx.saved_tensors
        return grad_output * (latent.abs() <= 1.0).to(grad_output.dtype)


class SignSTE(nn.Module):
    """Parametrization W = sign(w) (sign(0) = +1) with the clipped straight-through gradient."""

    def forward(self, latent: Tensor) -> Tensor:
        return _SignSTE.apply(latent)


def attach_latent_weights(model: nn.Module, scale: float = LATENT_INIT_SCALE) -> list[nn.Parameter]:
    """Give every binary layer a latent weight ``scale * W`` (same signs); returns the latent parameters."""
    latents = []
    for module in model.modules():
        if isinstance(module, BINARY_LAYER_TYPES) and not parametrize.is_parametrized(module, "weight"):
            signs = module.weight.detach().clone()
            parametrize.register_parametrization(module, "weight", SignSTE(), unsafe=True)
            original = module.parametrizations.weight.original
            with torch.no_grad():
                original.copy_(signs * scale)
            latents.append(original)
    return latents


def latent_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The latent weights of a model prepared by :func:`attach_latent_weights`, in module order."""
    return [module.parametrizations.weight.original for module in model.modules()
            if isinstance(module, BINARY_LAYER_TYPES) and parametrize.is_parametrized(module, "weight")]


class LatentAdam(torch.optim.Adam):
    """Adam over latent weights that also reports, like the binary optimizers, how many binary weights
    (signs of the latent weights) flipped in the last step (``last_flips``)."""

    def __init__(self, params, lr: float = 1e-3) -> None:
        super().__init__(params, lr=lr)
        self.last_flips: list[int] = []

    def step(self, closure=None, t: int | None = None):  # t: same call shape as the binary optimizers
        params = [p for group in self.param_groups for p in group["params"]]
        before = [p.detach() >= 0 for p in params]
        loss = super().step(closure)
        self.last_flips = [int(((p.detach() >= 0) != sign).sum()) for p, sign in zip(params, before, strict=True)]
        return loss
