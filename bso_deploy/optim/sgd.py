"""torch.optim.SGD with a leaner step for the online loop, which steps it T times per batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class OnlineSGD(torch.optim.SGD):
    """:class:`torch.optim.SGD`, bit for bit, with less per-call overhead on CPU.

    torch's step gathers lists of parameters, gradients and buffers, chooses between its for-loop and
    foreach implementations, then runs the for-loop (``torch.optim.sgd._single_tensor_sgd``) on CPU. This
    step runs those same tensor operations directly, per parameter whose grad is not None::

        g <- -g if maximize;   g <- g.add(p, alpha=weight_decay) if weight_decay != 0
        b <- clone(g) on the first step, else b.mul_(momentum).add_(g, alpha=1 - dampening)   (momentum != 0)
        g <- g.add(b, alpha=momentum) if nesterov else b;   p.add_(g, alpha=-lr)

    Any other case (a closure, a param on another device, sparse gradients, tensor hyperparameters, foreach,
    fused or differentiable groups, a grad scaler) runs torch's step. Hyperparameters, state and state_dict
    are SGD's, so checkpoints load into either class.
    """

    def _lean(self, group: dict[str, Any]) -> bool:
        if group["foreach"] or group["fused"] or group["differentiable"]:
            return False
        if any(isinstance(group[key], Tensor) for key in ("lr", "momentum", "weight_decay", "dampening")):
            return False
        return all(p.grad is None or (p.device.type == "cpu" and not p.grad.is_sparse) for p in group["params"])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        leanable = getattr(self, "grad_scale", None) is None and getattr(self, "found_inf", None) is None
        if closure is not None or not leanable or not all(self._lean(group) for group in self.param_groups):
            return _unhooked_sgd_step(self, closure)
        with torch.no_grad():
            for group in self.param_groups:
                self._group_step(group)
        return None

    def _group_step(self, group: dict[str, Any]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for param in group["params"]:
            if param.grad is None:
                continue
            grad = param.grad if not maximize else -param.grad
            if weight_decay != 0:
                grad = grad.add(param, alpha=weight_decay)
            if momentum != 0:
                state = self.state[param]
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = grad.detach().clone()
                    state["momentum_buffer"] = buffer
                else:
                    buffer.mul_(momentum).add_(grad, alpha=1 - dampening)
                grad = grad.add(buffer, alpha=momentum) if nesterov else buffer
            param.add_(grad, alpha=-lr)


def _unhooked_sgd_step(optimizer: OnlineSGD, closure: Callable[[], Any] | None) -> Any:
    """torch.optim.SGD.step without the hook wrapper torch puts around a class's step once an instance of it
    exists (this class's step already ran the optimizer's hooks)."""
    step = torch.optim.SGD.step
    if getattr(step, "hooked", False):
        step = step.__wrapped__
    return step(optimizer, closure)
