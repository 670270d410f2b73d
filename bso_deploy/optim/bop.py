"""Bop, the latent-weight-free binary optimizer of Helwegen et al. (2019): the baseline BSO builds on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from bso_deploy.optim.bso import BinaryOptimizer, check_hyperparameter, check_threshold
from bso_deploy.optim.functional import bop_update_


class Bop(BinaryOptimizer):
    """Bop ("Latent Weights Do Not Exist", Helwegen et al., NeurIPS 2019, arXiv:1906.02107), as in Larq.

        m    <- m + gamma * (g - m)                Larq's form; m starts at 0, no reset on flip
        flip <- W * m - threshold > 0              strict ">"
        W[flip] <- -W[flip]

    The arithmetic is `functional.bop_update_`. Larq computes W <- sign(-sign(W * m - threshold) * W) with
    sign(0) = +1, so an exact tie W * m == threshold sets W to +1; here a tie leaves W unchanged.

    Args:
        params: binary parameters (entries exactly -1.0 or +1.0) or param-group dicts.
        gamma: adaptivity rate in (0, 1] (Bop's 1 - momentum; Larq's default 1e-4).
        threshold: flip threshold, >= 0 (Larq's default 1e-8).

    State: `state[p]["momentum"]` (tensor like p). `step(closure=None, t=None)`: t is ignored.
    """

    def __init__(self, params: Iterable[Any], gamma: float = 1e-4, threshold: float = 1e-8) -> None:
        super().__init__(params, {"gamma": gamma, "threshold": threshold})

    def _validate_group(self, group: dict[str, Any]) -> None:
        check_hyperparameter("gamma", group["gamma"], "0 < gamma <= 1", lambda v: 0 < v <= 1)
        check_threshold(group["threshold"])

    def _update(
        self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any], t: Any
    ) -> Tensor:
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return bop_update_(param, grad, state["momentum"], gamma=group["gamma"], threshold=group["threshold"])
