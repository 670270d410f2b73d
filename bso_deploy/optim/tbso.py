"""T-BSO: BSO with a temporal-aware threshold, one second-moment scalar per binary tensor and time step."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from bso_deploy.optim.bso import BinaryOptimizer, check_hyperparameter, check_threshold
from bso_deploy.optim.functional import tbso_update_


class TBSO(BinaryOptimizer):
    """Temporal-aware Binary Spiking Online optimizer (Liang et al., ICML 2025, arXiv:2511.12502).

    With beta1 = 1 - momentum, beta2 = 1 - variance_decay, t the time-step index in [0, time_steps - 1]:

        m    <- (1 - beta1) * m + beta1 * g                     no reset on flip
        v[t] <- (1 - beta2) * v[t] + mean(beta2 * g * g)        one scalar per tensor and t; v starts at 0,
                                                                no bias correction; other v[t'] unchanged
        flip <- W * m / (sqrt(v[t]) + eps) - threshold > 0      strict ">"
        W[flip] <- -W[flip]

    The arithmetic is `functional.tbso_update_`, bit-identical in float32 to the reference code
    (hamingsi/BSO, modules/Bop.py, default branch) except at an exact tie, where the reference sets W to
    sign(0) = 0; here W stays unchanged, so it stays binary.

    Args:
        params: binary parameters (entries exactly -1.0 or +1.0) or param-group dicts.
        momentum: m's decay, in [0, 1) (reference: beta1 = 1e-3).
        variance_decay: v's decay, in [0, 1) (reference: beta2 = 1e-5).
        threshold: flip threshold on W * m / sqrt(v[t]), >= 0.
        time_steps: T, the number of time steps per sample (int >= 1); length of v.
        eps: added to sqrt(v[t]), > 0.

    State: `state[p]["momentum"]` (tensor like p) and `state[p]["second_moment"]` (float32 vector of
    length time_steps on p's device). `step(closure=None, t=...)`: t is required.
    """

    def __init__(
        self,
        params: Iterable[Any],
        momentum: float = 0.999,
        variance_decay: float = 0.99999,
        threshold: float = 5e-7,
        time_steps: int = 4,
        eps: float = 1e-10,
    ) -> None:
        defaults = {
            "momentum": momentum,
            "variance_decay": variance_decay,
            "threshold": threshold,
            "time_steps": time_steps,
            "eps": eps,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        check_hyperparameter("momentum", group["momentum"], "0 <= momentum < 1", lambda v: 0 <= v < 1)
        check_hyperparameter(
            "variance_decay", group["variance_decay"], "0 <= variance_decay < 1", lambda v: 0 <= v < 1
        )
        check_threshold(group["threshold"])
        check_hyperparameter(
            "time_steps",
            group["time_steps"],
            "integer >= 1",
            lambda v: isinstance(v, numbers.Integral) and v >= 1,
        )
        check_hyperparameter("eps", group["eps"], "0 < eps < inf", lambda v: 0 < v < math.inf)

    def _check_time_step(self, t: Any) -> None:
        time_steps = min(group["time_steps"] for group in self.param_groups)
        valid = isinstance(t, numbers.Integral) and not isinstance(t, bool) and 0 <= t < time_steps
        if not valid:
            raise ValueError(
                f"TBSO.step needs the time-step index t, an int in [0, {time_steps - 1}] "
                f"(time_steps={time_steps}); got {t!r}"
            )

    def _update(
        self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any], t: Any
    ) -> Tensor:
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["second_moment"] = torch.zeros(
                group["time_steps"], dtype=torch.float32, device=param.device
            )
        second_moment = state["second_moment"]
        if second_moment.numel() != group["time_steps"]:
            raise ValueError(
                f"second_moment has {second_moment.numel()} entries but time_steps is {group['time_steps']}"
            )
        flips, _ = tbso_update_(
            param,
            grad,
            state["momentum"],
            second_moment,
            t,
            beta1=1.0 - group["momentum"],
            beta2=1.0 - group["variance_decay"],
            threshold=group["threshold"],
            eps=group["eps"],
        )
        return flips

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch casts floating state to each parameter's dtype on load; keep second_moment float32."""
        super().load_state_dict(state_dict)
        for state in self.state.values():
            if "second_moment" in state:
                state["second_moment"] = state["second_moment"].to(torch.float32)
