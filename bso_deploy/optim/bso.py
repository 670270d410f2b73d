"""BSO optimizer, and the plumbing that BSO, TBSO and Bop share (validation, step loop, flip counts)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from bso_deploy.optim.functional import bso_update_


def check_hyperparameter(name: str, value: Any, valid_range: str, in_range: Callable[[Any], bool]) -> None:
    """Raise TypeError unless `value` is a real number, ValueError unless `in_range(value)` (NaN fails)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number ({valid_range}), got {value!r}")
    if not in_range(value):
        raise ValueError(f"Invalid {name}: {value!r}; valid range: {valid_range}")


def check_threshold(value: Any) -> None:
    check_hyperparameter("threshold", value, "0 <= threshold < inf", lambda v: 0 <= v < math.inf)


def _to_ints(counts: list[Tensor]) -> list[int]:
    """0-d tensors of whole numbers (integer, or float holding them exactly) -> Python ints, with one device
    synchronisation instead of one per tensor."""
    if not counts:
        return []
    return [int(count) for count in torch.stack([count.to(counts[0].device) for count in counts]).tolist()]


class BinaryOptimizer(Optimizer):
    """Base of the binary optimizers: parameters are float tensors holding exactly -1.0 or +1.0.

    Subclasses define `_validate_group` (hyperparameter ranges) and `_update` (state creation and one
    in-place functional update, returning the number of flipped entries as a 0-d tensor). The step here:
    checks the time-step index, evaluates the closure, checks once that every parameter is binary,
    checks that all gradients are finite before flipping anything (so a bad step leaves every weight and
    state untouched), updates parameters whose grad is not None, and stores `last_flips`: the number of
    flipped entries per parameter, in param-group order flattened over groups (0 for skipped parameters).
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        params = list(params)
        if not params:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list; pass the binary parameters (entries "
                "-1.0/+1.0) and train full-precision parameters with a standard optimizer"
            )
        self.last_flips: list[int] = []
        self._binary_checked = False
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("last_flips", [])
        self.__dict__.setdefault("_binary_checked", False)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        self._validate_group(merged)
        super().add_param_group(param_group)
        self._binary_checked = False  # new parameters are checked at the next step

    def _validate_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _check_time_step(self, t: Any) -> None:
        """BSO and Bop accept and ignore t, so one training loop can call every optimizer alike."""

    def _update(
        self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any], t: Any
    ) -> Tensor:
        raise NotImplementedError

    def _check_binary(self, params: list[Tensor]) -> None:
        for index, param in enumerate(params):
            if not param.is_floating_point():
                raise TypeError(f"binary parameter {index} must be floating point, not {param.dtype}")
        bad_counts = _to_ints([((param != 1) & (param != -1)).sum() for param in params])
        for index, (param, bad) in enumerate(zip(params, bad_counts)):
            if bad:
                raise ValueError(
                    f"{type(self).__name__}: parameter {index} (shape {tuple(param.shape)}) has {bad} of "
                    f"{param.numel()} entries that are not -1.0 or +1.0; binary optimizers take only binary "
                    "weights, so train full-precision parameters with a standard optimizer (e.g. SGD)"
                )

    @staticmethod
    def _check_finite(active: list[tuple[int, Tensor]]) -> None:
        """Raise FloatingPointError naming every gradient that holds NaN or Inf.

        A sum is NaN or +-Inf whenever a term is (IEEE arithmetic propagates both), so the sum of the
        gradients' sums and one synchronisation clear the usual all-finite case; only a non-finite total (a
        non-finite entry, or finite entries whose sum overflowed) pays for the per-entry count."""
        for index, param in active:
            if param.grad.is_sparse:
                raise RuntimeError(f"binary parameter {index} has a sparse gradient, which is not supported")
        if not active:
            return
        sums = [param.grad.sum() for _, param in active]
        total = sums[0] if len(sums) == 1 else torch.stack([part.to(sums[0].device) for part in sums]).sum()
        if math.isfinite(total.item()):
            return
        bad_counts = _to_ints([(~torch.isfinite(param.grad)).sum() for _, param in active])
        for (index, param), bad in zip(active, bad_counts):
            if bad:
                raise FloatingPointError(
                    f"gradient of binary parameter {index} (shape {tuple(param.shape)}) has {bad} non-finite "
                    "entries (NaN/Inf); no weight was flipped in this step"
                )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, t: int | None = None) -> Any:
        """Perform one optimization step; returns the closure's loss (None without a closure)."""
        self._check_time_step(t)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        entries = [(group, param) for group in self.param_groups for param in group["params"]]
        if not self._binary_checked:
            self._check_binary([param for _, param in entries])
            self._binary_checked = True
        active = [(index, param) for index, (_, param) in enumerate(entries) if param.grad is not None]
        self._check_finite(active)
        counts = []
        for index, _ in active:
            group, param = entries[index]
            counts.append(self._update(param, param.grad, self.state[param], group, t))
        flips = [0] * len(entries)
        for (index, _), count in zip(active, _to_ints(counts)):
            flips[index] = count
        self.last_flips = flips
        return loss


class BSO(BinaryOptimizer):
    """Binary Spiking Online optimizer (Liang et al., ICML 2025, arXiv:2511.12502): flip, then reset m.

    With beta1 = 1 - momentum, per binary weight W in {-1, +1} and gradient g = dL/dW:

        m    <- (1 - beta1) * m + beta1 * g                     m starts at 0
        flip <- W * m - threshold > 0                          strict ">"
        W[flip] <- -W[flip];  m[flip] <- 0

    The arithmetic is `functional.bso_update_`, bit-identical in float32 to the reference code
    (hamingsi/BSO, modules/Bop.py, `reset=True` branch) except at an exact tie W * m == threshold, where the
    reference sets W to sign(0) = 0 and halves m; here W and m stay unchanged, so W stays binary.

    Args:
        params: binary parameters (entries exactly -1.0 or +1.0) or param-group dicts.
        momentum: m's decay, in [0, 1) (reference: beta1 = 1 - momentum = 1e-3).
        threshold: flip threshold, >= 0.

    State: `state[p]["momentum"]` (tensor like p). `step(closure=None, t=None)`: t is ignored.
    """

    def __init__(self, params: Iterable[Any], momentum: float = 0.999, threshold: float = 1e-6) -> None:
        super().__init__(params, {"momentum": momentum, "threshold": threshold})

    def _validate_group(self, group: dict[str, Any]) -> None:
        check_hyperparameter("momentum", group["momentum"], "0 <= momentum < 1", lambda v: 0 <= v < 1)
        check_threshold(group["threshold"])

    def _update(
        self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any], t: Any
    ) -> Tensor:
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return bso_update_(param, grad, state["momentum"], beta1=1.0 - group["momentum"],
                           threshold=group["threshold"])
