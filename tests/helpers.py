"""Helpers shared by several test modules."""

from __future__ import annotations

import torch
from torch import nn


def randomise_batchnorm(model: nn.Module, seed: int, *, mean_std: float = 1.0, var_low: float = 1.0,
                        var_span: float = 4.0, var_scale: float = 1.0, gamma_low: float = 0.5, gamma_span: float = 1.0,
                        bias_mean: float = 0.3, bias_std: float = 0.3, uniform_scale: bool = False) -> nn.Module:
    """Put every BatchNorm in eval mode with random running statistics and affine parameters.

    running_mean ~ N(0, mean_std^2); running_var = (U[0,1) * var_span + var_low) * var_scale; gamma = U[0,1) *
    gamma_span + gamma_low with every third gamma negated (a negative gamma flips a binary row's signs);
    beta ~ N(bias_mean, bias_std^2). With ``uniform_scale`` every row gets running_var 4 and gamma 1 (one positive
    scale per layer, which profile loihi can express with one vth). Draws happen in that order from one generator.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=generator) * mean_std)
                if uniform_scale:
                    module.running_var.copy_(torch.full((n,), 4.0))
                    gamma = torch.ones(n)
                else:
                    module.running_var.copy_((torch.rand(n, generator=generator) * var_span + var_low) * var_scale)
                    gamma = torch.rand(n, generator=generator) * gamma_span + gamma_low
                    gamma[::3] *= -1.0
                module.weight.copy_(gamma)
                module.bias.copy_(torch.randn(n, generator=generator) * bias_std + bias_mean)
    return model.eval()
