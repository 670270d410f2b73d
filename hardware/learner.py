"""The learner contract of docs/onchip-learning.md §11, shared by every learner (``"sim"``
``hardware/learning.py``, ``"torch"`` ``hardware/torch_learning.py``, ``"lava"`` ``hardware/lava/onchip.py``):
the containers :class:`LearningState` and :class:`LearningRecord`, the :class:`Learner` protocol, the
learning window and the checks of a learning layer and of a run's inputs. The table of learners by name is
``hardware/learners.py``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

import numpy as np

from .learning_rule import LearningRule
from .spec import SPEC

__all__ = [
    "Learner",
    "LearnerFactory",
    "LearningRecord",
    "LearningState",
    "check_learning_inputs",
    "check_learning_layer",
    "learning_window",
    "population_network",
    "with_layer_bias",
]


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
    bias: (n_out,) int64 learned biases b, in [-bias_max, bias_max] (§15; zeros without a learned bias).
        None (a state written before §15) reads as zeros.
    """

    weight: Any
    momentum: Any
    trace: Any
    second_moment: Any
    counter: int
    bias: Any = None


class LearningRecord(NamedTuple):
    """What a learner returns for N samples of S = T + latency steps each (NumPy arrays).

    predictions: (N,) int64, the network's prediction for each sample while it learned (argmax of the
        readout's v at the last step, or of the summed output spikes; with a population readout, §14, of
        their sums over each class's P neurons).
    flips: (N,) int64 flips per sample. flip_events: (E, 4) int64 rows (sample, step, i, j), in order.
    state: the learning state after the last sample.
    steps: with ``record=True`` a dict of per-step arrays, each (N, S, ...): "trace", "momentum", "weight",
        "second_moment", "error", "surrogate", "bias" of the learning layer after the step; "spikes/<k>" and
        "v/<k>" of every layer k >= the learning layer; otherwise empty.
    """

    predictions: np.ndarray
    flips: np.ndarray
    flip_events: np.ndarray
    state: LearningState
    steps: dict[str, np.ndarray]


class Learner(Protocol):
    """Runs a FixedPointNetwork while one binary layer learns (docs/onchip-learning.md §11).

    Constructed by a factory ``(fx_net, rule, layer) -> Learner`` from :data:`~.learners.LEARNERS`. State
    (weights, momenta, second moments, counter) persists across ``run`` calls; neuron state, synaptic delays
    and traces are reset per sample. ``inputs`` (T, N, *input_shape) integers in [0, 255]; the learner appends
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
    if rule.population > 1 and rule.feedback_alignment and fx_net.layers[-1].num_neurons % rule.population:
        raise ValueError(f"a feedback-alignment rule with population {rule.population} pools the output layer's "
                         f"error over {rule.population} neurons per class (docs/onchip-learning.md §18), and the "
                         f"output layer has {fx_net.layers[-1].num_neurons}")
    if rule.population > 1 and not rule.feedback_alignment and (index != count - 1 or n_out % rule.population):
        raise ValueError(f"a population readout of {rule.population} neurons per class (docs/onchip-learning.md "
                         f"§14) must be the output layer with a multiple of {rule.population} neurons; layer "
                         f"{chosen.name!r} is layer {index} of {count} with {n_out} (build it with "
                         "population_network)")
    if rule.feedback_alignment and index == count - 1:
        raise ValueError(f"feedback='random' trains a hidden layer from the output layer's error (docs/onchip-"
                         f"learning.md §18); layer {chosen.name!r} is the output layer, which learns from its own "
                         "error: use feedback='host' for it, or choose a hidden layer")
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
        if index != len(fx_net.layers) - 1 and not rule.feedback_alignment:
            raise ValueError("labels drive the on-chip error of the output layer only (§5); for a hidden layer "
                             "give errors (T, N, n_out) from the host, or use feedback='random' (§18)")
        labels = np.asarray(labels)
        n_classes = fx_net.layers[-1].num_neurons // rule.population  # a population readout, §14
        if labels.dtype.kind not in "iu" or labels.shape != (samples,) or (
                labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
            raise ValueError(f"labels must be {samples} integers in [0, {n_classes}), got {labels!r:.200}")
        return inputs.astype(np.int64), labels.astype(np.int64), None
    if rule.feedback_alignment:
        raise ValueError("feedback='random' computes the hidden layer's error on chip from the labels (docs/onchip-"
                         "learning.md §18); give labels, or use feedback='host' to deliver errors from the host")
    errors = np.asarray(errors)
    shape = (rule.time_steps, samples, fx_net.layers[index].num_neurons)
    if errors.dtype.kind not in "iu" or errors.shape != shape:
        raise ValueError(f"errors must be integers of shape (T, N, n_out) = {shape}, got {errors.dtype} "
                         f"{errors.shape}")
    return inputs.astype(np.int64), None, errors.astype(np.int64)


def population_network(fx_net: Any, population: int) -> Any:
    """``fx_net`` with its output layer replaced by a population readout (docs/onchip-learning.md §14): each
    of its C neurons repeated ``population`` times (rows of ``weight``, ``vth``, ``bias_mant``, ``bias_exp``),
    neuron c P + p being member p of class c. The members start equal, so the pooled output (the sum over a
    class's members) is P times the original one and every prediction is unchanged."""
    if isinstance(population, bool) or not isinstance(population, numbers.Integral) or population < 1:
        raise ValueError(f"population must be an integer >= 1, got {population!r}")
    last = fx_net.layers[-1]
    if population == 1:
        return fx_net
    if last.kind != "dense" or len(last.output_shape) != 1:
        raise ValueError(f"a population readout repeats the neurons of a dense output layer; layer {last.name!r} "
                         f"is a {last.kind} layer of shape {last.output_shape}")
    n_out = last.output_shape[0]

    def repeat(value: Any) -> Any:
        array = np.asarray(value)
        return np.repeat(array, population, axis=0) if array.ndim and array.shape[0] == n_out else value

    changes = {name: repeat(getattr(last, name)) for name in ("weight", "vth", "bias_mant", "bias_exp")}
    return replace(fx_net, layers=(*fx_net.layers[:-1], replace(last, **changes)))


def with_layer_bias(fx_net: Any, layer: int, bias_mant: np.ndarray) -> Any:
    """``fx_net`` with layer ``layer``'s ``bias_mant`` registers replaced (e.g. by the learned ones, §15)."""
    layers = list(fx_net.layers)
    layers[layer] = replace(layers[layer], bias_mant=np.asarray(bias_mant, dtype=np.int64))
    return replace(fx_net, layers=tuple(layers))
