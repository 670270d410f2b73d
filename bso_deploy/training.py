"""Online (OTTT-style) training of binary SNNs with BSO, T-BSO or Bop, and the BPTT-STE baseline.

For each batch and each time step t = 0..T-1 (:func:`train_online_batch`)::

    zero gradients
    out[t]  = model.step(encode(x, t))                 # state from t-1 detached
    loss[t] = ((1 - w) CE(out[t], y) + w MSE(out[t], onehot(y))) / T      (w = mse_weight = 0.05)
    loss[t].backward()                                  # dL/dW = delta[t] (outer) trace[t]
    full-precision optimizer step; binary optimizer step(t=t)   # weights may flip inside a sample

Nothing is kept across time steps for backward, so memory is constant in T. The prediction is the
argmax of sum_t out[t].

The baseline ``bptt-ste`` (:func:`train_bptt_batch`) runs the same model, data, neuron and loss with the
state kept in the graph: the T per-step losses are summed, one backward pass goes through all T steps, and
one Adam step updates the latent weights (:mod:`bso_deploy.ste`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .layers import binary_layer_names, is_binary_layer, split_parameters
from .models import build_model
from .network import SpikingNetwork
from .optim import BINARY_OPTIMIZERS, CosineLR, OnlineSGD, StepDecay
from .ste import LatentAdam, attach_latent_weights, latent_parameters


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf."""


def build_network(config: TrainConfig, input_shape: Sequence[int], num_classes: int) -> SpikingNetwork:
    """The model of ``config`` for samples of ``input_shape`` (without the batch axis) and ``num_classes``
    outputs; for ``bptt-ste`` with latent weights and backpropagation through time."""
    model = build_model(config.model, input_shape, num_classes, binary=config.binary,
                        lif=config.lif_parameters(), seed=config.seed, hidden=config.hidden, cnn=config.cnn,
                        batchnorm=config.batchnorm, time_steps=config.time_steps)
    if not config.online:
        attach_latent_weights(model)
        model.set_online(False)
    return model


def online_loss(output: Tensor, target: Tensor, num_classes: int, time_steps: int, mse_weight: float,
                one_hot: Tensor | None = None) -> Tensor:
    """Per-step loss of the BSO reference: ((1 - w) CE + w MSE(one-hot)) / T. ``one_hot``: the target's
    one-hot rows in ``output``'s dtype, when the caller has them (one batch's T steps share them)."""
    ce = F.cross_entropy(output, target)
    if one_hot is None:
        one_hot = F.one_hot(target, num_classes).to(output.dtype)
    mse = F.mse_loss(output, one_hot)
    return ((1.0 - mse_weight) * ce + mse_weight * mse) / time_steps


@dataclass
class Optimizers:
    """The binary optimizer, the full-precision one, and their per-epoch schedules (step decay, cosine lr)."""

    binary: torch.optim.Optimizer
    full_precision: torch.optim.Optimizer
    schedules: list[StepDecay | CosineLR] = field(default_factory=list)

    def zero_grad(self) -> None:
        """Every parameter's grad to None: what ``zero_grad(set_to_none=True)`` of both optimizers does, without
        its per-call profiling and foreach bookkeeping (the online loop calls this T times per batch)."""
        for optimizer in (self.binary, self.full_precision):
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None

    def step(self, t: int) -> list[int]:
        """Full-precision step, then the binary step at time-step index t; returns flips per binary layer."""
        self.full_precision.step()
        self.binary.step(t=t)
        return list(self.binary.last_flips)

    def end_epoch(self, completed_epochs: int) -> None:
        for schedule in self.schedules:
            schedule.step(completed_epochs)

    def state_dict(self) -> dict:
        return {"binary": self.binary.state_dict(), "full_precision": self.full_precision.state_dict(),
                "schedules": [s.state_dict() for s in self.schedules]}

    def load_state_dict(self, state: dict) -> None:
        self.binary.load_state_dict(state["binary"])
        self.full_precision.load_state_dict(state["full_precision"])
        for schedule, schedule_state in zip(self.schedules, state["schedules"], strict=True):
            schedule.load_state_dict(schedule_state)


def make_optimizers(model: nn.Module, config: TrainConfig) -> Optimizers:
    """Binary optimizer of ``config.method`` over the binary weights; SGD/Adam over the rest."""
    if config.method == "bptt-ste":
        binary = latent_parameters(model)
        latent_ids = {id(p) for p in binary}
        full_precision = [p for p in model.parameters() if id(p) not in latent_ids]
    else:
        binary, full_precision = split_parameters(model)
    if not binary:
        raise ValueError("the model has no binary layers; choose binary='hidden' or 'all'")
    threshold = config.flip_threshold
    if config.method == "bptt-ste":
        binary_optimizer: torch.optim.Optimizer = LatentAdam(binary, lr=config.ste_lr)
    elif config.method == "tbso":
        binary_optimizer = BINARY_OPTIMIZERS["tbso"](
            binary, momentum=config.momentum, variance_decay=config.variance_decay, threshold=threshold,
            time_steps=config.time_steps)
    elif config.method == "bso":
        binary_optimizer = BINARY_OPTIMIZERS["bso"](binary, momentum=config.momentum, threshold=threshold)
    else:
        binary_optimizer = BINARY_OPTIMIZERS["bop"](binary, gamma=config.bop_gamma, threshold=threshold)
    if config.fp_optimizer == "sgd":
        fp_optimizer: torch.optim.Optimizer = OnlineSGD(
            full_precision, lr=config.lr, momentum=config.fp_momentum, weight_decay=config.weight_decay)
    else:
        fp_optimizer = torch.optim.Adam(full_precision, lr=config.lr, weight_decay=config.weight_decay)
    schedules: list[StepDecay | CosineLR] = []
    if config.decay_every and config.online:
        schedules = [StepDecay(binary_optimizer, name, every=config.decay_every, factor=config.decay_factor)
                     for name in ("threshold", "one_minus_momentum")]
    if config.lr_schedule == "cosine":
        schedules.append(CosineLR(fp_optimizer, config.epochs))
        if not config.online:  # the latent weights' Adam
            schedules.append(CosineLR(binary_optimizer, config.epochs))
    return Optimizers(binary_optimizer, fp_optimizer, schedules)


@dataclass
class BatchResult:
    loss: float
    correct: int
    flips: list[int]


def train_online_batch(model: nn.Module, x: Tensor, y: Tensor, encoder, key: int, optimizers: Optimizers,
                       time_steps: int, num_classes: int, mse_weight: float,
                       after_backward: Callable[[], None] | None = None) -> BatchResult:
    """One batch of online training over T steps (equations in the module docstring).
    ``after_backward`` is called after every backward pass (memory measurement hooks in there)."""
    model.reset_state()
    output_sum: Tensor | None = None
    total_loss = 0.0
    flips: list[int] | None = None
    one_hot: Tensor | None = None
    for t in range(time_steps):
        optimizers.zero_grad()
        output = model.step(encoder(x, t, key))
        if one_hot is None:
            one_hot = F.one_hot(y, num_classes).to(output.dtype)
        loss = online_loss(output, y, num_classes, time_steps, mse_weight, one_hot=one_hot)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(f"the loss became {loss_value} at time step {t}")
        loss.backward()
        if after_backward is not None:
            after_backward()
        step_flips = optimizers.step(t)
        flips = step_flips if flips is None else [a + b for a, b in zip(flips, step_flips, strict=True)]
        total_loss += loss_value
        output_sum = output.detach() if output_sum is None else output_sum + output.detach()
    assert output_sum is not None and flips is not None  # time_steps >= 1 is validated by the config
    correct = int((output_sum.argmax(1) == y).sum())
    return BatchResult(loss=total_loss, correct=correct, flips=flips)


def train_bptt_batch(model: nn.Module, x: Tensor, y: Tensor, encoder, key: int, optimizers: Optimizers,
                     time_steps: int, num_classes: int, mse_weight: float,
                     after_backward: Callable[[], None] | None = None) -> BatchResult:
    """One batch of backpropagation through time: sum of the T per-step losses, one backward, one step."""
    model.reset_state()
    optimizers.zero_grad()
    outputs = [model.step(encoder(x, t, key)) for t in range(time_steps)]
    loss = sum(online_loss(output, y, num_classes, time_steps, mse_weight) for output in outputs)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"the loss became {loss.item()}")
    loss.backward()
    if after_backward is not None:
        after_backward()
    flips = optimizers.step(time_steps - 1)
    output_sum = torch.stack([o.detach() for o in outputs]).sum(0)
    correct = int((output_sum.argmax(1) == y).sum())
    return BatchResult(loss=float(loss.item()), correct=correct, flips=flips)


BATCH_TRAINERS = {"tbso": train_online_batch, "bso": train_online_batch, "bop": train_online_batch,
                  "bptt-ste": train_bptt_batch}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], encoder, time_steps: int,
             device: torch.device, key_offset: int = 1 << 40) -> float:
    """Accuracy of argmax(sum_t out[t]) over ``batches``; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for index, (x, y) in enumerate(batches):
        x, y = x.to(device), y.to(device)
        model.reset_state()
        output_sum = sum(model.step(encoder(x, t, key_offset + index)) for t in range(time_steps))
        correct += int((output_sum.argmax(1) == y).sum())
        total += int(y.numel())
    model.train(was_training)
    return correct / max(total, 1)


def train_epoch(model: nn.Module, loader, encoder, optimizers: Optimizers, config: TrainConfig,
                num_classes: int, epoch: int, device: torch.device, progress: bool = True, stepper=None) -> dict:
    """Train one epoch; returns loss, train accuracy, flips and flip rate per binary layer.

    ``stepper`` (default: the model) is what runs the steps, e.g. a
    :class:`bso_deploy.distributed.DistributedStepper` that all-reduces gradients, or a
    :class:`bso_deploy.hardware_aware.HardwareAwareNetwork` (whose ``train()`` keeps BatchNorm frozen)."""
    stepper = model if stepper is None else stepper
    stepper.train()
    names = binary_layer_names(model)
    sizes = [module.weight.numel() for module in model.modules() if is_binary_layer(module)]
    flips = [0] * len(names)
    loss_sum = 0.0
    correct = seen = steps = 0
    # disable=None: a bar on a terminal, none in logs
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
               disable=None if progress else True, mininterval=0.5, dynamic_ncols=True)
    for index, (x, y) in enumerate(bar):
        x, y = x.to(device), y.to(device)
        result = BATCH_TRAINERS[config.method](stepper, x, y, encoder, epoch * 1_000_003 + index, optimizers,
                                               config.time_steps, num_classes, config.mse_weight)
        loss_sum += result.loss * len(y)
        correct += result.correct
        seen += len(y)
        steps += config.time_steps
        flips = [a + b for a, b in zip(flips, result.flips, strict=True)]
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
    bar.close()
    return {
        "loss": loss_sum / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "flips": dict(zip(names, flips, strict=True)),
        "flip_rate": {name: count / (size * max(steps, 1))
                      for name, count, size in zip(names, flips, sizes, strict=True)},
    }


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``. Under torchrun a bare ``cuda`` means this process's GPU,
    ``cuda:$LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
