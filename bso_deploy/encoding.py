"""Input encoders: turn a batch `x` into the network input at time step t.

Every encoder is a frozen dataclass called as `encoder(x, t, key=0) -> Tensor`. `t` is the time step
(int >= 0) and `key` names the batch (e.g. its index in the epoch, int >= 0); a stochastic encoder's output
depends only on (its seed, key, t), never on call order. Inputs holding NaN or Inf are rejected with
ValueError. The static encoders (direct, rate) take a batch (batch, *shape) and return a tensor with the
shape, dtype and device of `x`; the frames encoder takes samples that already have a time axis, (batch, T,
*shape) (event data sets, :mod:`bso_deploy.event_data`), and returns frame t, (batch, *shape).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

_MASK64 = (1 << 64) - 1


def _check_index(value: object, what: str) -> int:
    """`value` as an int in [0, 2**64), else TypeError/ValueError naming `what`."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}") from None
    if not 0 <= number <= _MASK64:
        raise ValueError(f"{what} must lie in [0, 2**64), got {number}")
    return number


def _check_input(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}; convert it with x.float()")
    # A sum is NaN or +-Inf whenever a term is, so one reduction clears the usual all-finite input; only a
    # non-finite sum (a non-finite entry, or finite entries whose sum overflowed) pays for the exact check.
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        problems = [name for name, found in (("NaN", torch.isnan(x).any()), ("Inf", torch.isinf(x).any()))
                    if bool(found)]
        raise ValueError(f"x contains {' and '.join(problems)}; encoders need finite inputs "
                         "(check the data set's transform and normalization)")
    return x


def _splitmix64(value: int) -> int:
    """SplitMix64 finalizer (Steele, Lea, Flood 2014): a bijection on 64-bit ints that scatters bits."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def step_seed(seed: int, key: int, t: int) -> int:
    """The generator seed for one (encoder seed, batch key, time step), in [0, 2**63).

        h = splitmix64(splitmix64(splitmix64(seed) XOR key) XOR t) >> 1

    Chaining the mix (rather than a linear sum such as `seed * a + key * b + t`) keeps distinct triples
    from sharing a seed, e.g. (key=0, t=b) and (key=1, t=0).
    """
    seed = _check_index(seed, "seed")
    key = _check_index(key, "key")
    t = _check_index(t, "t")
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ key) ^ t) >> 1


@dataclass(frozen=True)
class DirectEncoder:
    """Direct (current) coding: the static input `x` itself at every step (returned as is, not copied)."""

    def __call__(self, x: torch.Tensor, t: int, key: int = 0) -> torch.Tensor:
        _check_index(t, "t")
        _check_index(key, "key")
        return _check_input(x)


@dataclass(frozen=True)
class RateEncoder:
    """Rate (Bernoulli) coding: at each step every element spikes independently with probability p.

        p = clamp(x, 0, 1),   s[t] = 1 if u[t] < p else 0,   u[t] ~ Uniform[0, 1)

    so E[s[t]] = p: x <= 0 never spikes, x >= 1 spikes at every step. Values outside [0, 1] are clamped,
    not rejected, so normalized inputs (e.g. CIFAR-10) still encode; prefer direct coding for them.
    `u[t]` comes from a fresh `torch.Generator` on `x.device` seeded with `step_seed(seed, key, t)`, so the
    spikes are reproducible for a given device type and dtype (CPU and CUDA, float32 and float64 draw
    different streams).

    Attributes:
        seed: int in [0, 2**64).
    """

    seed: int = 0

    def __post_init__(self) -> None:
        _check_index(self.seed, "RateEncoder.seed")

    def __call__(self, x: torch.Tensor, t: int, key: int = 0) -> torch.Tensor:
        x = _check_input(x)
        generator = torch.Generator(device=x.device).manual_seed(step_seed(self.seed, key, t))
        uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (uniform < x.clamp(0.0, 1.0)).to(x.dtype)


@dataclass(frozen=True)
class EventFramesEncoder:
    """Frames as recorded: step t gets frame t of every sample, `x[:, t]`, unchanged (a view, not a copy).

    For samples that carry their own time axis, `x` of shape (batch, T, *shape), such as the event-count
    frames of the event data sets; `t` must be < T (train with `--time-steps` equal to the frames per sample).
    """

    def __call__(self, x: torch.Tensor, t: int, key: int = 0) -> torch.Tensor:
        t = _check_index(t, "t")
        _check_index(key, "key")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 3:
            raise ValueError(f"the frames encoder takes samples with a time axis, x of shape (batch, T, *shape), "
                             f"got {tuple(x.shape)}; use --encoder direct or rate for static data")
        if t >= x.shape[1]:
            raise ValueError(f"time step {t} asked, but the samples hold {x.shape[1]} frames; use --time-steps "
                             f"{x.shape[1]} or load the data set with as many frames as time steps")
        return _check_input(x[:, t])


Encoder = Callable[[torch.Tensor, int, int], torch.Tensor]

ENCODERS: Mapping[str, Callable[[int], Encoder]] = MappingProxyType({
    "direct": lambda seed: DirectEncoder(),
    "rate": lambda seed: RateEncoder(seed=seed),
    "frames": lambda seed: EventFramesEncoder(),
})
"""Encoder name -> factory taking the seed (ignored by deterministic encoders)."""


def make_encoder(name: str, seed: int = 0) -> Encoder:
    """The encoder called `name` (a key of `ENCODERS`), seeded with `seed` where it draws random numbers."""
    if not isinstance(name, str) or name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid names: {', '.join(ENCODERS)}")
    _check_index(seed, "seed")
    return ENCODERS[name](seed)
