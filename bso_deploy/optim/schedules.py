"""Per-epoch schedules: step decay of a binary optimizer's threshold or (1 - momentum), as in the BSO reference
training, and cosine annealing of a learning rate."""

from __future__ import annotations

import math
import numbers
from typing import Any

from torch.optim import Optimizer

VALID_NAMES = ("threshold", "one_minus_momentum")


def is_new_epoch(epoch: int, last_epoch: int) -> bool:
    """Whether a schedule told ``epoch`` completed epochs acts: True when epoch > last_epoch, False when it is
    the same (a resumed run cannot apply a step twice); ValueError for an earlier or invalid epoch."""
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"Invalid epoch: {epoch!r}; valid range: integer >= 0")
    if epoch < last_epoch:
        raise ValueError(f"epoch {epoch} is before the last epoch seen, {last_epoch}")
    return epoch > last_epoch


class StepDecay:
    """Multiply `threshold` or `1 - momentum` of every param group by `factor` every `every` epochs.

        threshold          <- factor * threshold
        one_minus_momentum:   momentum <- 1 - factor * (1 - momentum)     (BSO, TBSO)
                              gamma    <- factor * gamma                   (Bop: gamma is its 1 - momentum)

    `step(epoch)`, called once per epoch with the number of completed epochs, applies the decay when
    epoch > 0 and epoch % every == 0 (reference: factor 0.1 every 50 epochs on CIFAR, 20 on ImageNet).
    Unlike the reference, calling `step` again with the same epoch does nothing (so a resumed run cannot
    decay twice), and an epoch smaller than the last one raises ValueError.

    Args:
        optimizer: a BSO, TBSO or Bop (any optimizer whose groups hold the named hyperparameter).
        name: "threshold" or "one_minus_momentum".
        every: decay period in epochs, int >= 1.
        factor: multiplier in (0, 1].
    """

    def __init__(self, optimizer: Optimizer, name: str, every: int, factor: float = 0.1) -> None:
        if name not in VALID_NAMES:
            raise ValueError(f"Unknown schedule name {name!r}; valid names: {', '.join(VALID_NAMES)}")
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"Invalid every: {every!r}; valid range: integer >= 1")
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor <= 1:
            raise ValueError(f"Invalid factor: {factor!r}; valid range: 0 < factor <= 1")
        for index, group in enumerate(optimizer.param_groups):
            if name == "threshold" and "threshold" not in group:
                raise ValueError(f"param group {index} of {type(optimizer).__name__} has no 'threshold'")
            if name == "one_minus_momentum" and "gamma" not in group and "momentum" not in group:
                raise ValueError(
                    f"param group {index} of {type(optimizer).__name__} has neither 'momentum' nor 'gamma'"
                )
        self.optimizer = optimizer
        self.name = name
        self.every = int(every)
        self.factor = float(factor)
        self.last_epoch = 0

    def step(self, epoch: int) -> None:
        """Record that `epoch` epochs are complete; decay when epoch > 0 and epoch % every == 0."""
        if not is_new_epoch(epoch, self.last_epoch):
            return
        self.last_epoch = int(epoch)
        if epoch % self.every != 0:
            return
        for group in self.optimizer.param_groups:
            if self.name == "threshold":
                group["threshold"] = self.factor * group["threshold"]
            elif "gamma" in group:
                group["gamma"] = self.factor * group["gamma"]
            else:
                group["momentum"] = 1.0 - self.factor * (1.0 - group["momentum"])

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and progress; the decayed values live in the optimizer's state_dict."""
        return {"name": self.name, "every": self.every, "factor": self.factor, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["name"] != self.name:
            raise ValueError(f"state_dict is for a {state_dict['name']!r} schedule, not {self.name!r}")
        self.every = int(state_dict["every"])
        self.factor = float(state_dict["factor"])
        self.last_epoch = int(state_dict["last_epoch"])


class CosineLR:
    """Cosine annealing of the learning rate ``lr`` of every param group, per epoch (as the BSO paper trains)::

        lr(e) = base_lr * (1 + cos(pi * e / total_epochs)) / 2        e = completed epochs, 0..total_epochs

    so epoch 1 runs at base_lr and the rate reaches 0 after ``total_epochs``. ``base_lr`` is each group's lr
    at construction. ``step(epoch)`` follows :class:`StepDecay`: called with the number of completed epochs,
    a repeated epoch does nothing, an earlier one raises ValueError. The state_dict holds the base rates and
    the progress; ``total_epochs`` comes from the constructor, and :meth:`load_state_dict` sets every
    group's lr to lr(last_epoch) over it. So a run resumed with the same budget continues exactly, and one
    whose budget was raised continues on the cosine of the new budget (the epochs already trained ran on
    the old one's).

    Args:
        optimizer: any optimizer whose param groups have ``lr`` (SGD, Adam, bso_deploy.ste.LatentAdam).
        total_epochs: epochs of the whole run, integer >= 1.
    """

    def __init__(self, optimizer: Optimizer, total_epochs: int) -> None:
        if isinstance(total_epochs, bool) or not isinstance(total_epochs, numbers.Integral) or total_epochs < 1:
            raise ValueError(f"Invalid total_epochs: {total_epochs!r}; valid range: integer >= 1")
        for index, group in enumerate(optimizer.param_groups):
            if "lr" not in group:
                raise ValueError(f"param group {index} of {type(optimizer).__name__} has no 'lr'")
        self.optimizer = optimizer
        self.total_epochs = int(total_epochs)
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0

    def learning_rate(self, base_lr: float, epoch: int) -> float:
        """lr after ``epoch`` completed epochs (clamped to total_epochs: 0 from then on)."""
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return base_lr * (1.0 + math.cos(math.pi * progress)) / 2.0

    def step(self, epoch: int) -> None:
        """Record that ``epoch`` epochs are complete and set every group's lr to lr(epoch)."""
        if not is_new_epoch(epoch, self.last_epoch):
            return
        self.last_epoch = int(epoch)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.learning_rate(base_lr, self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"name": "cosine_lr", "base_lrs": list(self.base_lrs), "total_epochs": self.total_epochs,
                "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("name") != "cosine_lr":
            raise ValueError(f"state_dict is for a {state_dict.get('name')!r} schedule, not 'cosine_lr'")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"state_dict has {len(state_dict['base_lrs'])} base rates for "
                             f"{len(self.optimizer.param_groups)} param groups")
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        self.last_epoch = int(state_dict["last_epoch"])
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.learning_rate(base_lr, self.last_epoch)
