"""The on-chip learning rule's integer hyperparameters, its result containers and the learner registry.

This module holds what every implementation of docs/onchip-learning.md shares (the NumPy rule in
``hardware/learning.py``, the torch rule in ``hardware/torch_learning.py``, the Lava process in
``hardware/lava/learning/``): the frozen, validated :class:`LearningRule` (§2), the float -> integer
mapping :meth:`LearningRule.from_float` (§9), the containers :class:`LearningState` and
:class:`LearningRecord`, the :class:`Learner` protocol and the :data:`LEARNERS` registry. No arithmetic of
the rule lives here: each implementation writes it on its own (docs/fixed-point.md's convention).
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, Protocol

import numpy as np

from .spec import SPEC

__all__ = [
    "HASH_MASK",
    "HASH_MULTIPLIERS",
    "LEARNERS",
    "ROUNDINGS",
    "RULE_VERSION",
    "SURROGATE_BITS",
    "VARIANTS",
    "Learner",
    "LearnerFactory",
    "LearningRecord",
    "LearningRule",
    "LearningState",
    "check_learning_inputs",
    "check_learning_layer",
    "get_learner",
    "learning_window",
    "register_learner",
]

RULE_VERSION = 1
VARIANTS = ("bso", "tbso")
ROUNDINGS = ("nearest", "stochastic")
SURROGATE_BITS = 4  # postsynaptic factor h: unsigned 4-bit table entries (§4)
DECAY_BITS = SPEC.decay_bits  # trace decay: 12-bit register, as the neuron's decays (§3)
HASH_MASK = (1 << 32) - 1  # the stochastic-rounding hash works on 32-bit words (§8)
HASH_MULTIPLIERS = (0x7FEB352D, 0x1B873593)  # odd, < 2**31: every product of a 32-bit word fits int64 (§8)
HASH_GOLDEN = 0x9E3779B9  # mixes the learning-step counter into the key (§8)


def _check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"LearningRule.{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"LearningRule.{name} = {value} is outside [{low}, {high}]" + (f"; {hint}" if hint else ""))


@dataclass(frozen=True)
class LearningRule:
    """Integer hyperparameters of the on-chip BSO / T-BSO rule (docs/onchip-learning.md §2). One rule per
    learning layer; every implementation reads its fields and nothing else.

    variant: "bso" (momentum reset on flip, §6) or "tbso" (per-time-step second moment, §7).
    time_steps: T, input steps per sample: the learning window (§5) and the number of second moments.
    trace_decay, trace_increment, trace_bits: presynaptic trace x (unsigned, saturating, §3):
        x <- min(trunc(x (4096 - trace_decay) / 4096) + trace_increment * input, 2**trace_bits - 1).
    surrogate_shift, surrogate_table: postsynaptic factor h of a spiking layer (§4):
        h = surrogate_table[|v - (vth << 6)| >> surrogate_shift], 0 beyond the table; 1 for a readout.
    error_bits: the error e is signed, saturated to +-(2**(error_bits - 1) - 1) (§5).
    error_shift, error_target: the on-chip error of a readout (§5):
        e = clip(c >> error_shift, -error_target, error_target) - (+error_target if label else -error_target).
    momentum_bits, momentum_shift, product_shift: momentum m, signed saturating (§6):
        m <- sat(m - R(m, momentum_shift) + R(e h x, product_shift)), beta = 1 - 2**-momentum_shift.
    flip_threshold, threshold_shift: flip when W m > theta (strict, §6, §7); BSO: theta = flip_threshold;
        T-BSO: theta = (flip_threshold * isqrt(s[t])) >> threshold_shift.
    second_moment_bits, second_moment_shift, second_moment_product_shift: T-BSO's s[t], unsigned saturating:
        s[t] <- sat(s[t] - R(s[t], second_moment_shift) + R(sum(g*g) // n, second_moment_product_shift)) (§7).
    t_epoch: flips are decided at every t_epoch-th learning step only; momenta update every step (§6).
    rounding: R() is round-half-away ("nearest") or seeded "stochastic" rounding with ``seed`` (§8).
    """

    variant: str = "tbso"
    time_steps: int = 4
    trace_decay: int = 2048
    trace_increment: int = 64
    trace_bits: int = 8
    surrogate_shift: int = 6
    surrogate_table: tuple[int, ...] = (8, 4, 2, 1)
    error_bits: int = 8
    error_shift: int = 0
    error_target: int = 32
    momentum_bits: int = 16
    momentum_shift: int = 4
    product_shift: int = 4
    flip_threshold: int = 0
    threshold_shift: int = 0
    second_moment_bits: int = 32
    second_moment_shift: int = 8
    second_moment_product_shift: int = 8
    t_epoch: int = 1
    rounding: str = "nearest"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"LearningRule.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"LearningRule.rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        try:
            table = tuple(self.surrogate_table)
        except TypeError:
            raise ValueError(f"LearningRule.surrogate_table must be a sequence of integers, got "
                             f"{self.surrogate_table!r}") from None
        object.__setattr__(self, "surrogate_table", table)
        _check_int("time_steps", self.time_steps, 1, 1 << 16)
        _check_int("trace_decay", self.trace_decay, 0, (1 << DECAY_BITS) - 1, "a 12-bit decay register (§3)")
        _check_int("trace_bits", self.trace_bits, 1, 16)
        _check_int("trace_increment", self.trace_increment, 0, self.trace_max, "it must fit the trace width")
        _check_int("surrogate_shift", self.surrogate_shift, 0, SPEC.state_bits)
        if not 1 <= len(table) <= 16:
            raise ValueError(f"LearningRule.surrogate_table needs 1 to 16 entries, got {len(table)}")
        for index, entry in enumerate(table):
            _check_int(f"surrogate_table[{index}]", entry, 0, (1 << SURROGATE_BITS) - 1,
                       f"entries are unsigned {SURROGATE_BITS}-bit (§4)")
        _check_int("error_bits", self.error_bits, 2, 16)
        _check_int("error_shift", self.error_shift, 0, SPEC.state_bits + 8)
        _check_int("error_target", self.error_target, 0, self.error_max // 2,
                   "2 * error_target must fit the error width, so that the on-chip error never saturates (§5)")
        _check_int("momentum_bits", self.momentum_bits, 2, 32)
        _check_int("momentum_shift", self.momentum_shift, 0, 30)
        _check_int("product_shift", self.product_shift, 0, 40)
        _check_int("flip_threshold", self.flip_threshold, 0, (1 << 32) - 1)
        _check_int("threshold_shift", self.threshold_shift, 0, 31)
        _check_int("second_moment_bits", self.second_moment_bits, 1, 48)
        _check_int("second_moment_shift", self.second_moment_shift, 0, 40)
        _check_int("second_moment_product_shift", self.second_moment_product_shift, 0, 62)
        _check_int("t_epoch", self.t_epoch, 1, 1 << 20)
        _check_int("seed", self.seed, 0, HASH_MASK, "seeds are 32-bit words (§8)")
        if self.rounding == "stochastic":
            for name in ("momentum_shift", "product_shift", "second_moment_shift", "second_moment_product_shift"):
                if getattr(self, name) > 32:
                    raise ValueError(f"LearningRule.{name} = {getattr(self, name)} > 32: stochastic rounding draws "
                                     "32-bit random words (§8); use a smaller shift or rounding='nearest'")
        if self.variant == "bso" and self.flip_threshold > self.momentum_max:
            raise ValueError(f"LearningRule.flip_threshold = {self.flip_threshold} exceeds the largest momentum "
                             f"{self.momentum_max}: no synapse could ever flip; lower it or widen momentum_bits")

    # --- derived ranges ---
    @property
    def trace_max(self) -> int:
        return (1 << self.trace_bits) - 1

    @property
    def error_max(self) -> int:
        """Errors saturate symmetrically at +-error_max (§5)."""
        return (1 << (self.error_bits - 1)) - 1

    @property
    def momentum_max(self) -> int:
        """Momenta saturate symmetrically at +-momentum_max (§6)."""
        return (1 << (self.momentum_bits - 1)) - 1

    @property
    def second_moment_max(self) -> int:
        return (1 << self.second_moment_bits) - 1

    @property
    def surrogate_max(self) -> int:
        return max(self.surrogate_table)

    @property
    def bits_per_synapse(self) -> int:
        """Learning state per synapse: the 1-bit weight plus the momentum (§10). The traces (per input), the
        second moments (per layer and time step) and the surrogate (per neuron) are not per synapse."""
        return SPEC.binary_weight_bits + self.momentum_bits

    def product_bound(self, n_in: int, n_out: int, spiking: bool) -> int:
        """Largest |sum_ij (e h x)**2| of a layer (n_out, n_in): the implementations require it below 2**63
        (§7); ValueError from :func:`check_layer_bounds` otherwise."""
        h = self.surrogate_max if spiking else 1
        return (self.error_max * h * self.trace_max) ** 2 * n_in * n_out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["surrogate_table"] = list(self.surrogate_table)
        data["version"] = RULE_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearningRule:
        data = dict(data)
        version = data.pop("version", RULE_VERSION)
        if version != RULE_VERSION:
            raise ValueError(f"learning rule version {version} is not supported (this bso-deploy reads {RULE_VERSION})")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown LearningRule fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_float(cls, variant: str = "tbso", *, momentum: float = 0.9375, threshold: float = 0.0,
                   variance_decay: float = 0.99609375, trace_scale: float = 64, error_scale: float = 1.0,
                   surrogate_scale: float = 1.0, spiking: bool = False, input_max: int = 1,
                   error_bound: int | None = None, threshold_bits: int = 12, precision_bits: int = 0,
                   **integer_fields: Any) -> LearningRule:
        """The integer rule for float BSO / T-BSO hyperparameters (docs/onchip-learning.md §9).

        momentum -> momentum_shift s = round(-log2(1 - momentum)) (beta = 1 - 2**-s, the nearest such);
        variance_decay -> second_moment_shift s2 likewise. The scales of the three factors (trace_scale:
        integer trace units per float trace unit, error_scale per float error unit, surrogate_scale per
        unit of the float surrogate; G = their product) fix the momentum scale M = G 2**(s - product_shift):
        m_int ~ M m_float. Unless given, product_shift is the smallest that keeps the largest product
        g_max = error_bound * h_max * x_max (x_max: the trace's reach for inputs up to ``input_max``; h_max:
        the table's largest entry if ``spiking``, else 1; error_bound: 2 error_target, else error_max) within
        the momentum's range after the EMA's gain 2**s, less ``precision_bits`` (finer momenta; a momentum
        then saturates only if its gradient stays near the worst case), and second_moment_product_shift p2
        the smallest that keeps g_max**2 2**(s2 - p2) within the second moment's range. BSO:
        flip_threshold = round(threshold M). T-BSO: W m / sqrt(s[t]) > threshold is scale free (G cancels):
        theta / 2**threshold_shift = threshold 2**(s - product_shift + (p2 - s2) / 2), with threshold_shift
        chosen so that flip_threshold keeps ``threshold_bits`` significant bits. Other integer fields
        (trace_*, error_*, momentum_bits, rounding, seed, t_epoch, ...) pass through.
        """
        for name, value in (("momentum", momentum), ("variance_decay", variance_decay)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold < math.inf:
            raise ValueError(f"threshold must be a finite float >= 0, got {threshold!r}")
        if not (error_scale > 0 and trace_scale > 0 and surrogate_scale > 0):
            raise ValueError("trace_scale, error_scale and surrogate_scale must be > 0")
        shift = max(0, round(-math.log2(1.0 - momentum)))
        shift2 = max(0, round(-math.log2(1.0 - variance_decay)))
        draft = cls(**{"variant": variant, "momentum_shift": shift, "second_moment_shift": shift2,
                       **{k: v for k, v in integer_fields.items() if k not in ("flip_threshold", "threshold_shift")}})
        x_max = draft.trace_max if draft.trace_decay == 0 else min(
            draft.trace_max, math.ceil(draft.trace_increment * input_max * (1 << DECAY_BITS) / draft.trace_decay))
        if error_bound is None:
            error_bound = 2 * draft.error_target if draft.error_target else draft.error_max
        g_max = max(1, error_bound * (draft.surrogate_max if spiking else 1) * x_max)
        safe_shift = math.ceil(math.log2(g_max * 2.0 ** shift / draft.momentum_max))
        product_shift = integer_fields.get("product_shift", max(0, safe_shift - precision_bits))
        p2 = integer_fields.get("second_moment_product_shift", max(0, math.ceil(
            math.log2(g_max ** 2 * 2.0 ** shift2 / draft.second_moment_max))))
        fields_: dict[str, Any] = {**integer_fields, "variant": variant, "momentum_shift": shift,
                                   "second_moment_shift": shift2, "product_shift": product_shift,
                                   "second_moment_product_shift": p2, "threshold_shift": 0}
        if variant == "tbso":
            factor = threshold * 2.0 ** (shift - product_shift + (p2 - shift2) / 2)
            if factor > 0:
                exponent = max(0, min(31, threshold_bits - 1 - math.floor(math.log2(factor))))
                fields_["threshold_shift"] = exponent
                fields_["flip_threshold"] = round(factor * 2.0 ** exponent)
            else:
                fields_["flip_threshold"] = 0
        else:
            scale = trace_scale * error_scale * surrogate_scale * 2.0 ** (shift - product_shift)
            fields_["flip_threshold"] = round(threshold * scale)
        return cls(**fields_)

    def momentum_scale(self, trace_scale: float, error_scale: float, surrogate_scale: float = 1.0) -> float:
        """M: integer momentum units per float momentum unit, for the given factor scales (§9)."""
        return trace_scale * error_scale * surrogate_scale * 2.0 ** (self.momentum_shift - self.product_shift)


def learning_window(layer_index: int, rule: LearningRule) -> range:
    """The steps (0-based step of a sample's run) at which layer ``layer_index`` learns: the T steps at which
    it receives the sample's input, ``layer_index + 1 ... layer_index + T`` (docs/onchip-learning.md §5,
    docs/fixed-point.md §5.2). Learning step ``t`` of the window is time-step index ``t - layer_index - 1``."""
    return range(layer_index + 1, layer_index + 1 + rule.time_steps)


class LearningState(NamedTuple):
    """The learning layer's state (docs/onchip-learning.md §2). NumPy: int arrays; torch: int64 tensors.

    weight: (n_out, n_in) int8 signs -1/+1 (the learning layer's ``weight``, docs/fixed-point.md §4.6).
    momentum: (n_out, n_in) int64, in [-momentum_max, momentum_max].
    trace: (n_in,) int64 presynaptic traces, in [0, trace_max]; reset to 0 at the start of every sample.
    second_moment: (time_steps,) int64 T-BSO estimates s[t] (zeros, unused, for BSO).
    counter: learning steps taken so far (drives t_epoch and the stochastic-rounding hash, §6, §8).
    """

    weight: Any
    momentum: Any
    trace: Any
    second_moment: Any
    counter: int


class LearningRecord(NamedTuple):
    """What a learner returns for N samples of S = T + latency steps each (NumPy arrays).

    predictions: (N,) int64, the network's prediction for each sample while it learned (argmax of the
        readout's v at the last step, or of the summed output spikes).
    flips: (N,) int64 flips per sample. flip_events: (E, 4) int64 rows (sample, step, i, j), in order.
    state: the learning state after the last sample.
    steps: with ``record=True`` a dict of per-step arrays, each (N, S, ...): "trace", "momentum", "weight",
        "second_moment", "error", "surrogate" of the learning layer after the step; "spikes/<k>" and
        "v/<k>" of every layer k >= the learning layer; otherwise empty.
    """

    predictions: np.ndarray
    flips: np.ndarray
    flip_events: np.ndarray
    state: LearningState
    steps: dict[str, np.ndarray]


class Learner(Protocol):
    """Runs a FixedPointNetwork while one binary layer learns (docs/onchip-learning.md §11).

    Constructed by a factory ``(fx_net, rule, layer) -> Learner`` from :data:`LEARNERS`. State (weights,
    momenta, second moments, counter) persists across ``run`` calls; neuron state, synaptic delays and traces
    are reset per sample. ``inputs`` (T, N, *input_shape) integers in [0, 255]; the learner appends
    ``latency`` zero steps per sample. Exactly one of ``labels`` (N,) (on-chip error of the output layer,
    §5) or ``errors`` (T, N, n_out) (host-delivered error at each learning step) is given.
    """

    name: str
    layer: int

    def run(self, inputs: np.ndarray, labels: np.ndarray | None = None, errors: np.ndarray | None = None,
            record: bool = False) -> LearningRecord: ...

    @property
    def state(self) -> LearningState: ...


LearnerFactory = Callable[..., Learner]
LEARNERS: dict[str, LearnerFactory] = {}
# Learners whose module registers them on import (so that Lava is imported only when asked for).
_LAZY_LEARNERS = {"sim": "bso_deploy.hardware.learning", "torch": "bso_deploy.hardware.torch_learning",
                  "lava": "bso_deploy.hardware.lava.onchip"}


def register_learner(name: str, factory: LearnerFactory, replace: bool = False) -> None:
    """Add ``factory`` under ``name``; ValueError if taken and ``replace`` is False."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"learner name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"learner {name!r}: factory must be callable")
    if name in LEARNERS and not replace and LEARNERS[name] is not factory:
        raise ValueError(f"learner {name!r} is already registered; pass replace=True to override it")
    LEARNERS[name] = factory


def get_learner(name: str) -> LearnerFactory:
    """The factory called ``name`` (importing its module on first use); ValueError listing valid names."""
    if name not in LEARNERS and name in _LAZY_LEARNERS:
        importlib.import_module(_LAZY_LEARNERS[name])
    if name not in LEARNERS:
        valid = sorted(set(LEARNERS) | set(_LAZY_LEARNERS))
        raise ValueError(f"unknown learner backend {name!r}; valid: {', '.join(valid)}")
    return LEARNERS[name]


def check_learning_layer(fx_net: Any, layer: int, rule: LearningRule) -> int:
    """The index of the learning layer (negative counts from the end) after checking that it can learn: a
    binary dense layer whose largest sum of squared products fits int64 (docs/onchip-learning.md §7, §11)."""
    if not isinstance(rule, LearningRule):
        raise TypeError(f"rule must be a LearningRule, not {type(rule).__name__}")
    count = len(fx_net.layers)
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not -count <= layer < count:
        raise ValueError(f"layer must be an integer in [{-count}, {count - 1}] (the network has {count} layers), "
                         f"got {layer!r}")
    index = int(layer) % count
    chosen = fx_net.layers[index]
    if not chosen.binary:
        raise ValueError(f"layer {chosen.name!r} has {SPEC.weight_bits}-bit synapses; on-chip learning flips "
                         "1-bit synapses, so choose a binary layer: a readout is binary when it is a BinaryLinear "
                         "whose rows share one scale, i.e. without a BatchNorm after it (a BatchNorm gives each row "
                         "its own scale and the compiler makes such a readout 8-bit, docs/fixed-point.md §10.2) "
                         "(docs/onchip-learning.md §11)")
    if chosen.kind != "dense":
        raise ValueError(f"layer {chosen.name!r} is a {chosen.kind} layer; on-chip learning supports dense layers "
                         "only (docs/onchip-learning.md §11)")
    n_out, n_in = chosen.weight.shape
    if rule.product_bound(n_in, n_out, chosen.spiking) >= 1 << 63:
        raise ValueError(f"layer {chosen.name!r}: the sum of squared products of {n_out} x {n_in} synapses may "
                         "exceed int64 (§7); lower error_bits or trace_bits")
    return index


def check_learning_inputs(fx_net: Any, rule: LearningRule, layer: int, inputs: Any, labels: Any,
                          errors: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validated (inputs int64 (T, N, *input_shape), labels int64 (N,) or None, errors int64 (T, N, n_out) or
    None) for a :class:`Learner` run (its docstring gives the contract)."""
    inputs = np.asarray(inputs)
    expected = tuple(fx_net.input_shape)
    if inputs.dtype.kind not in "iub":
        raise ValueError(f"inputs must be integers in [0, {SPEC.input_max}] (docs/fixed-point.md §5.3), got dtype "
                         f"{inputs.dtype}; quantize float inputs first")
    if inputs.ndim != 2 + len(expected) or tuple(inputs.shape[2:]) != expected:
        raise ValueError(f"inputs must have shape (T, N, *{expected}), got {inputs.shape}")
    if inputs.shape[0] != rule.time_steps:
        raise ValueError(f"inputs have {inputs.shape[0]} steps but the rule's time_steps is {rule.time_steps}; "
                         "give T input steps per sample (the learner appends the latency's zero steps)")
    if inputs.size and (inputs.min() < 0 or inputs.max() > SPEC.input_max):
        raise ValueError(f"inputs must lie in [0, {SPEC.input_max}], got values in [{inputs.min()}, {inputs.max()}]")
    samples = inputs.shape[1]
    if (labels is None) == (errors is None):
        raise ValueError("give exactly one of labels (on-chip error of the output layer) or errors (from the host)")
    index = int(layer) % len(fx_net.layers)
    if labels is not None:
        if index != len(fx_net.layers) - 1:
            raise ValueError("labels drive the on-chip error of the output layer only (§5); for a hidden layer "
                             "give errors (T, N, n_out) from the host")
        labels = np.asarray(labels)
        n_out = fx_net.layers[index].num_neurons
        if labels.dtype.kind not in "iu" or labels.shape != (samples,) or (
                labels.size and (labels.min() < 0 or labels.max() >= n_out)):
            raise ValueError(f"labels must be {samples} integers in [0, {n_out}), got {labels!r:.200}")
        return inputs.astype(np.int64), labels.astype(np.int64), None
    errors = np.asarray(errors)
    shape = (rule.time_steps, samples, fx_net.layers[index].num_neurons)
    if errors.dtype.kind not in "iu" or errors.shape != shape:
        raise ValueError(f"errors must be integers of shape (T, N, n_out) = {shape}, got {errors.dtype} "
                         f"{errors.shape}")
    return inputs.astype(np.int64), None, errors.astype(np.int64)
