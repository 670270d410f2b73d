"""Leaky integrate-and-fire neuron for online (OTTT-style) training.

The math lives in the pure function :func:`lif_step`; :class:`LIF` is a thin stateful wrapper.

Per time step t, with decay ``lambda = 1 - 1/tau`` (tau in time steps, default 2 so lambda = 0.5)::

    v[t]     = lambda * detach(v[t-1]) + I[t]              # charge; no gradient through time
    s[t]     = H(v[t] - theta)                             # strict ">": spike only when v > theta
    v[t]    <- v[t] - theta * s[t]      (reset="subtract")  # soft reset, reset not differentiated
    v[t]    <- v[t] * (1 - s[t])        (reset="zero")
    trace[t] = lambda * trace[t-1] + s[t]                   # OTTT presynaptic trace, no gradient

The forward pass of H is the Heaviside step; its backward pass is the derivative of sigmoid(alpha * x),
``alpha * sig(alpha x) * (1 - sig(alpha x))`` with alpha = 4 by default. The comparison is strict
(``v > theta``), matching NIR and Loihi; SpikingJelly, used by the BSO reference code, fires at
``v >= theta``. The difference only matters at exact ties, which binary weights make possible, and a
deployment toolkit must agree with the hardware there.

The trace is what the next layer's weight gradient uses: dL/dW[t] = delta[t] (outer) trace[t]
(see :mod:`bso_deploy.layers`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .options import RESET_MODES


@dataclass(frozen=True)
class LIFParameters:
    """LIF hyperparameters. tau is in time steps (> 1), threshold in input units, alpha is the
    steepness of the sigmoid surrogate."""

    tau: float = 2.0
    threshold: float = 1.0
    reset: str = "subtract"
    alpha: float = 4.0

    def __post_init__(self) -> None:
        if not (self.tau > 1.0):
            raise ValueError(f"LIF tau must be > 1 time step (decay 1 - 1/tau in (0, 1)), got {self.tau}")
        if not (self.threshold > 0.0):
            raise ValueError(f"LIF threshold must be > 0, got {self.threshold}")
        if self.reset not in RESET_MODES:
            raise ValueError(f"LIF reset must be one of {RESET_MODES}, got {self.reset!r}")
        if not (self.alpha > 0.0):
            raise ValueError(f"surrogate alpha must be > 0, got {self.alpha}")

    @property
    def decay(self) -> float:
        """Per-step membrane and trace decay lambda = 1 - 1/tau."""
        return 1.0 - 1.0 / self.tau

    def to_dict(self) -> dict:
        return asdict(self)


class LIFState(NamedTuple):
    """Membrane potential v (after reset) and presynaptic trace of this neuron's spikes; both detached."""

    v: Tensor
    trace: Tensor


class _SigmoidSurrogateSpike(torch.autograd.Function):
    """Heaviside forward (x > 0), sigmoid-derivative backward."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        # The comparison written straight into a tensor of x's dtype: on CPU, (x > 0).to(x.dtype) (a bool tensor,
        # then a conversion) takes several times as long.
        return torch.gt(x, 0, out=torch.empty_like(x))

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        """((grad_output * alpha) * sig) * (1 - sig), sig = sigmoid(alpha x): the products rounded in this
        order, in place on the tensors this call creates."""
        (x,) = ctx.saved_tensors
        sig = torch.mul(x, ctx.alpha).sigmoid_()
        return torch.mul(grad_output, ctx.alpha).mul_(sig).mul_(1.0 - sig), None


def spike_function(x: Tensor, alpha: float) -> Tensor:
    """H(x) with the sigmoid surrogate gradient alpha * sig(alpha x) (1 - sig(alpha x))."""
    return _SigmoidSurrogateSpike.apply(x, alpha)


def initial_state(like: Tensor) -> LIFState:
    return LIFState(v=torch.zeros_like(like), trace=torch.zeros_like(like))


def lif_step(current: Tensor, state: LIFState, params: LIFParameters, detach_state: bool = True
             ) -> tuple[Tensor, LIFState]:
    """One LIF step (equations in the module docstring). Returns (spikes, new_state); inputs are not
    mutated. With ``detach_state=False`` the previous v keeps its graph (backpropagation through
    time, used by the BPTT baseline); the online rule detaches it."""
    previous_v = state.v.detach() if detach_state else state.v
    v = params.decay * previous_v + current
    spikes = spike_function(v - params.threshold, params.alpha)
    fired = spikes.detach()
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_state):  # no graph for a detached state
        if params.reset == "subtract":  # v - theta * s in one pass: theta * s (s in {0, 1}) is exact, so
            v_after = torch.sub(v, fired, alpha=params.threshold)  # a fused multiply-add rounds the same
        else:
            v_after = v * (1.0 - fired)
    trace = params.decay * state.trace + fired
    return spikes, LIFState(v=v_after.detach() if detach_state else v_after, trace=trace)


class LIF(nn.Module):
    """Stateful LIF layer: call once per time step; :meth:`reset_state` between samples."""

    def __init__(self, params: LIFParameters | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else LIFParameters()
        self.detach_state = True
        self.state: LIFState | None = None

    def reset_state(self) -> None:
        self.state = None

    @property
    def trace(self) -> Tensor | None:
        return None if self.state is None else self.state.trace

    def forward(self, current: Tensor) -> Tensor:
        if self.state is None or self.state.v.shape != current.shape:
            self.state = initial_state(current.detach())
        spikes, self.state = lif_step(current, self.state, self.params, self.detach_state)
        return spikes

    def extra_repr(self) -> str:
        p = self.params
        return f"tau={p.tau}, threshold={p.threshold}, reset={p.reset!r}, alpha={p.alpha}"
