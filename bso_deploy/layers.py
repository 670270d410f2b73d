"""Binary synaptic layers and the OTTT trace-gradient synapse.

Binary layers store their weight as a float tensor of exactly -1.0 / +1.0: there is no latent real-valued
weight, no sign() in the forward pass and no straight-through estimator. The gradient dL/dW is taken at
the binary values; a binary optimizer (:mod:`bso_deploy.optim`) flips signs.

:func:`synapse_forward` implements the online (OTTT) weight gradient. At time step t a synaptic layer
receives the presynaptic spikes s[t] and their trace a[t] (see :mod:`bso_deploy.neuron`) and computes::

    forward:   y[t] = W s[t] + b
    backward:  dL/dW = delta[t] (outer) a[t],   dL/db = sum delta[t],   dL/ds[t] = W^T delta[t]

with delta[t] = dL/dy[t]. Only a[t] and W are saved for backward, and nothing crosses time steps, so
training memory does not grow with the number of time steps T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .options import BATCHNORM_STATISTICS


def _random_signs(shape: torch.Size, generator: torch.Generator | None) -> Tensor:
    bits = torch.randint(0, 2, shape, generator=generator)
    return (bits * 2 - 1).to(torch.float32)


class BinaryLinear(nn.Linear):
    """Fully connected layer with +-1 weights, ``y = x W^T (+ b)``; W has shape (out, in).

    The bias (off by default; a following BatchNorm absorbs scale and offset) is full precision.
    """

    is_binary = True

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias)
        with torch.no_grad():
            self.weight.copy_(_random_signs(self.weight.shape, generator))
            if self.bias is not None:
                self.bias.zero_()


class BinaryConv2d(nn.Conv2d):
    """2-D convolution with +-1 weights of shape (out, in / groups, kh, kw); zero padding only."""

    is_binary = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int = 0, bias: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        with torch.no_grad():
            self.weight.copy_(_random_signs(self.weight.shape, generator))
            if self.bias is not None:
                self.bias.zero_()


class _PerStepStatistics:
    """BatchNorm with one set of running statistics per time step and shared affine parameters.

    Call t (0-based, counted since :meth:`reset_state`; steps beyond ``time_steps - 1`` use the last set)
    normalizes with ``step_mean[t]``, ``step_var[t]`` (shape (T, C)): in training the batch's statistics,
    which update set t with torch's momentum rule; in eval mode set t. ``running_mean`` / ``running_var``
    hold the statistics pooled over the T steps, what one integer network can fold (the exporter folds them)::

        running_mean = mean_t step_mean[t]
        running_var  = mean_t step_var[t] + mean_t (step_mean[t] - running_mean)^2   (law of total variance)
    """

    def _init_steps(self, num_features: int, time_steps: int) -> None:
        if not isinstance(time_steps, int) or time_steps < 1:
            raise ValueError(f"per-step BatchNorm needs time_steps >= 1, got {time_steps!r}")
        self.time_steps = time_steps
        self.time_step = 0
        self.register_buffer("step_mean", torch.zeros(time_steps, num_features))
        self.register_buffer("step_var", torch.ones(time_steps, num_features))

    def reset_state(self) -> None:
        self.time_step = 0

    def forward(self, current: Tensor) -> Tensor:
        self._check_input_dim(current)
        t = min(self.time_step, self.time_steps - 1)
        self.time_step += 1
        mean, var = self.step_mean[t], self.step_var[t]  # row views: batch_norm updates them in place
        output = F.batch_norm(current, mean, var, self.weight, self.bias, self.training, self.momentum, self.eps)
        if self.training:
            with torch.no_grad():
                pooled = self.step_mean.mean(0)
                self.running_mean.copy_(pooled)
                self.running_var.copy_(self.step_var.mean(0) + (self.step_mean - pooled).pow(2).mean(0))
                self.num_batches_tracked += 1
        return output


class StepBatchNorm1d(_PerStepStatistics, nn.BatchNorm1d):
    """:class:`nn.BatchNorm1d` with per-time-step running statistics (see :class:`_PerStepStatistics`)."""

    def __init__(self, num_features: int, time_steps: int) -> None:
        super().__init__(num_features)
        self._init_steps(num_features, time_steps)


class StepBatchNorm2d(_PerStepStatistics, nn.BatchNorm2d):
    """:class:`nn.BatchNorm2d` with per-time-step running statistics (see :class:`_PerStepStatistics`)."""

    def __init__(self, num_features: int, time_steps: int) -> None:
        super().__init__(num_features)
        self._init_steps(num_features, time_steps)


class _RunningForward:
    """BatchNorm whose training forward normalizes with the running statistics, what deployment folds, while
    the gradient is that of batch-statistics BatchNorm (straight through)::

        y_batch = gamma (x - mean_batch) / sqrt(var_batch + eps) + beta     (updates the running statistics)
        y       = gamma (x - running_mean) / sqrt(running_var + eps) + beta  (statistics before this update)
        forward: y        backward: dL/dx, dL/dgamma, dL/dbeta of y_batch

    So the layers after it see in training what they see in evaluation and on the chip; the gradient keeps
    the per-feature batch mean removed, which the binary optimizers' statistics need (docs/training.md).
    Eval mode is torch's."""

    def forward(self, current: Tensor) -> Tensor:
        if not self.training:
            return super().forward(current)
        self._check_input_dim(current)
        deployed = F.batch_norm(current, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps)
        batch = F.batch_norm(current, self.running_mean, self.running_var, self.weight, self.bias, True,
                             self.momentum, self.eps)
        self.num_batches_tracked += 1
        return batch + (deployed - batch).detach()


class RunningBatchNorm1d(_RunningForward, nn.BatchNorm1d):
    """:class:`nn.BatchNorm1d` with the running-statistics forward of :class:`_RunningForward`."""


class RunningBatchNorm2d(_RunningForward, nn.BatchNorm2d):
    """:class:`nn.BatchNorm2d` with the running-statistics forward of :class:`_RunningForward`."""


def make_batchnorm(num_features: int, dims: int, statistics: str = "shared", time_steps: int = 1) -> nn.Module:
    """BatchNorm over ``num_features`` channels of a ``dims``-D current (1: (N, C), 2: (N, C, H, W)).
    ``statistics`` (``BATCHNORM_STATISTICS``): ``"shared"`` torch's (batch statistics in training, one set of
    running statistics, shared by the time steps, for evaluation), ``"per-step"`` one set of running
    statistics per time step (:class:`StepBatchNorm1d` / :class:`StepBatchNorm2d`), ``"running"`` the
    running statistics in the training forward too (:class:`RunningBatchNorm1d` / :class:`RunningBatchNorm2d`)."""
    if statistics not in BATCHNORM_STATISTICS:
        raise ValueError(f"unknown BatchNorm statistics {statistics!r}; valid: {', '.join(BATCHNORM_STATISTICS)}")
    if statistics == "per-step":
        return (StepBatchNorm1d if dims == 1 else StepBatchNorm2d)(num_features, time_steps)
    if statistics == "running":
        return (RunningBatchNorm1d if dims == 1 else RunningBatchNorm2d)(num_features)
    return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(num_features)


PER_STEP_BATCHNORM_TYPES = (StepBatchNorm1d, StepBatchNorm2d)
BINARY_LAYER_TYPES = (BinaryLinear, BinaryConv2d)
SYNAPSE_TYPES = (nn.Linear, nn.Conv2d)


def is_binary_layer(module: nn.Module) -> bool:
    return isinstance(module, BINARY_LAYER_TYPES)


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Return (binary weights, full-precision parameters) of ``model``, each in module order.

    Binary weights are the ``weight`` of every :class:`BinaryLinear` / :class:`BinaryConv2d`; everything
    else (biases, BatchNorm, full-precision layers) is full precision.
    """
    binary: list[nn.Parameter] = []
    binary_ids: set[int] = set()
    for module in model.modules():
        if is_binary_layer(module):
            binary.append(module.weight)
            binary_ids.add(id(module.weight))
    full_precision = [p for p in model.parameters() if id(p) not in binary_ids]
    return binary, full_precision


def binary_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the binary layers, in the order of :func:`split_parameters`."""
    return [name for name, module in model.named_modules() if is_binary_layer(module)]


class _TraceLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes: Tensor, trace: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(trace, weight)
        ctx.has_bias = bias is not None
        return F.linear(spikes, weight, bias)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        trace, weight = ctx.saved_tensors
        grad_spikes = grad_output @ weight if ctx.needs_input_grad[0] else None
        flat_grad = grad_output.reshape(-1, grad_output.shape[-1])
        grad_weight = flat_grad.t() @ trace.reshape(-1, trace.shape[-1])
        grad_bias = flat_grad.sum(0) if ctx.has_bias else None
        return grad_spikes, None, grad_weight, grad_bias


class _TraceConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes: Tensor, trace: Tensor, weight: Tensor, bias: Tensor | None,
                stride: tuple, padding: tuple, dilation: tuple, groups: int) -> Tensor:
        ctx.save_for_backward(trace, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.input_shape = spikes.shape
        return F.conv2d(spikes, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        trace, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        grad_spikes = None
        if ctx.needs_input_grad[0]:
            grad_spikes = torch.nn.grad.conv2d_input(ctx.input_shape, weight, grad_output,
                                                     stride, padding, dilation, groups)
        grad_weight = torch.nn.grad.conv2d_weight(trace, weight.shape, grad_output,
                                                  stride, padding, dilation, groups)
        grad_bias = grad_output.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_spikes, None, grad_weight, grad_bias, None, None, None, None


def synapse_forward(layer: nn.Module, spikes: Tensor, trace: Tensor | None) -> Tensor:
    """Apply a Linear/Conv2d layer to ``spikes`` with the OTTT weight gradient taken at ``trace``.

    With ``trace=None`` (or no autograd) this is the plain layer call: the weight gradient then uses the
    instantaneous input, which is what the first layer sees and what BPTT uses.
    """
    if trace is None or trace is spikes or not torch.is_grad_enabled():
        return layer(spikes)
    if trace.shape != spikes.shape:
        raise ValueError(f"trace shape {tuple(trace.shape)} differs from spike shape {tuple(spikes.shape)}")
    if isinstance(layer, nn.Linear):
        return _TraceLinear.apply(spikes, trace, layer.weight, layer.bias)
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ValueError("trace gradients support Conv2d with integer zero padding only")
        return _TraceConv2d.apply(spikes, trace, layer.weight, layer.bias, layer.stride, layer.padding,
                                  layer.dilation, layer.groups)
    raise TypeError(f"synapse_forward supports Linear and Conv2d layers, not {type(layer).__name__}")


def _tiles(layer: nn.Module, x: Tensor) -> int | None:
    """The tile size k when ``layer`` is an AvgPool2d over non-overlapping k x k tiles that
    :class:`_TiledAveragePool` reproduces bit for bit on ``x`` (CPU, float32/float64, NCHW-contiguous, no
    padding, no ceil mode, no divisor override); None otherwise."""
    if not isinstance(layer, nn.AvgPool2d) or layer.padding not in (0, (0, 0)) or layer.ceil_mode:
        return None
    if layer.divisor_override is not None or x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
        return None
    if x.dtype not in (torch.float32, torch.float64):  # torch sums half precision in float32, rounding once
        return None
    kernel = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * 2
    stride = layer.stride if isinstance(layer.stride, tuple) else (layer.stride,) * 2
    return kernel[0] if kernel[0] == kernel[1] == stride[0] == stride[1] else None


def _tile(x: Tensor, k: int, i: int, j: int, rows: int, columns: int) -> Tensor:
    """Entry (i, j) of every k x k tile of x (N, C, H, W): a strided view (N, C, rows, columns)."""
    return x[:, :, i:i + k * rows:k, j:j + k * columns:k]


class _TiledAveragePool(torch.autograd.Function):
    """F.avg_pool2d(x, k) over non-overlapping k x k tiles in the arithmetic of torch's CPU kernel, with
    strided whole-tensor additions instead of its per-output loop (about twice as fast)::

        forward:  y = ((((0 + x[0, 0]) + x[0, 1]) + ... + x[k-1, k-1]) / k^2      tile entries in row order
        backward: dL/dx = 0 + dL/dy / k^2 in each tile, 0 in the rows / columns no tile covers

    (0 + a turns -0.0 into +0.0, as the kernel's zero-initialized sums do.)"""

    @staticmethod
    def forward(ctx, x: Tensor, k: int) -> Tensor:
        rows, columns = x.shape[2] // k, x.shape[3] // k
        ctx.geometry = (x.shape, k)
        total = torch.add(_tile(x, k, 0, 0, rows, columns), 0.0)
        for index in range(1, k * k):
            total.add_(_tile(x, k, index // k, index % k, rows, columns))
        return total.div_(k * k)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        shape, k = ctx.geometry
        rows, columns = grad_output.shape[2], grad_output.shape[3]
        share = torch.div(grad_output, k * k).add_(0.0)
        covered = shape[2] == k * rows and shape[3] == k * columns
        grad = (torch.empty if covered else torch.zeros)(shape, dtype=share.dtype, device=share.device)
        for index in range(k * k):
            _tile(grad, k, index // k, index % k, rows, columns).copy_(share)
        return grad, None


def linear_spike_op(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` for a Flatten, Identity or AvgPool2d; non-overlapping average pooling on CPU goes through
    :class:`_TiledAveragePool`, bit-identical to ``layer(x)`` and its gradient, and faster."""
    k = _tiles(layer, x)
    return layer(x) if k is None else _TiledAveragePool.apply(x, k)
