"""On-chip learning in fixed point, NumPy: the BSO / T-BSO three-factor rule of docs/onchip-learning.md.

API contract (names stable; the torch rule and the Lava process implement the same, bit for bit):

- :class:`LearningRule` (frozen, validated integer hyperparameters, ``from_float``; ``hardware/learning_rule.py``),
  :class:`LearningState`, :class:`LearningRecord`, :class:`Learner`, the input checks
  (``hardware/learner.py``) are re-exported here; the learners by name, :data:`LEARNERS` /
  :func:`get_learner`, are in ``hardware/learners.py``.
- :func:`init_learning_state` ``(layer, rule) -> LearningState``.
- :func:`learning_step_int` ``(state, pre, v, vth, error, t, rule) -> (new_state, flips)``: one learning
  step of one layer, pure. ``pre`` (n_in,) the layer input delivered this step; ``v`` (n_out,) the voltage
  before reset; ``vth`` (n_out,) the threshold registers or None (readout: surrogate 1); ``error`` (n_out,)
  signed; ``t`` the time-step index in [0, T). ``flips`` (n_out, n_in) bool.
- :func:`readout_error_int` ``(current, label, rule) -> error``: the on-chip error of the output layer.
- :func:`trace_step_int`, :func:`surrogate_int`, :func:`round_shift_int`, :func:`hash32_int`,
  :func:`random_words_int`, :func:`isqrt_int`: the rule's parts (docs/onchip-learning.md §3 - §8).
- :class:`SimLearner` ``(fx_net, rule, layer=-1)``: the ``"sim"`` :class:`Learner`; ``run(inputs, labels=None,
  errors=None, record=False) -> LearningRecord``; ``state``; ``network()`` the FixedPointNetwork with the
  learned weights. :func:`with_layer_weight` swaps one layer's signs.

Everything is int64 and never mutates its inputs; each equation is written once, in the docstring of the
function that computes it, and cites docs/onchip-learning.md §N.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .learner import (
    Learner,
    LearningRecord,
    LearningState,
    check_learning_inputs,
    check_learning_layer,
    learning_window,
    with_layer_bias,
)
from .learning_counter import class_products_int, counter_step_int
from .learning_feedback import feedback_error_int, feedback_matrix_int, hash32_int
from .learning_readout import learned_bias_mant_int, member_thresholds_int, readout_error_int, saturate_error_int
from .learning_rule import HASH_GOLDEN, HASH_MASK, LearningRule
from .network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from .simulator import NeuronState, lif_step_int, neuron_params, simulate, synapse_params, synapse_step_int
from .spec import SPEC
from .step_functions import NeuronParams, bias_int

__all__ = [
    "Learner",
    "LearningRecord",
    "LearningRule",
    "LearningState",
    "SimLearner",
    "check_learning_inputs",
    "check_learning_layer",
    "hash32_int",
    "init_learning_state",
    "isqrt_int",
    "learned_bias_mant_int",
    "learning_step_int",
    "learning_window",
    "member_thresholds_int",
    "random_words_int",
    "readout_error_int",
    "refuse_recurrent",
    "round_shift_int",
    "saturate_error_int",
    "surrogate_int",
    "trace_step_int",
    "with_layer_weight",
]

_STREAMS = 4  # random words per synapse and step: momentum decay, product, second-moment decay and input (§8)


def random_words_int(seed: int, counter: int, size: int, stream: int) -> np.ndarray:
    """``size`` pseudo-random 32-bit words for learning step ``counter`` (§8):
    ``key = hash32((seed + counter * 0x9e3779b9) mod 2**32)``, word_i = ``hash32(key ^ (4 i + stream))``."""
    key = int(hash32_int(np.int64((seed + counter * HASH_GOLDEN) & HASH_MASK)))
    index = np.arange(size, dtype=np.int64) * _STREAMS + stream
    return hash32_int(key ^ index)


def round_shift_int(y: np.ndarray, shift: int, rounding: str, words: np.ndarray | None = None) -> np.ndarray:
    """R(y, k) = y / 2**k rounded to an integer (§8). k = 0: y. ``"nearest"``: half away from zero,
    ``sign(y) ((|y| + 2**(k-1)) >> k)``. ``"stochastic"``: ``(y >> k) + [(y & (2**k - 1)) > r]`` with
    ``r = word & (2**k - 1)`` from ``words`` (same shape as y), so E[R] = y / 2**k exactly."""
    y = np.asarray(y, dtype=np.int64)
    if shift == 0:
        return y
    if rounding == "nearest":
        return np.sign(y) * ((np.abs(y) + (1 << (shift - 1))) >> shift)
    mask = (1 << shift) - 1
    return (y >> shift) + ((y & mask) > (np.asarray(words, dtype=np.int64) & mask))


def isqrt_int(n: int) -> int:
    """floor(sqrt(n)) of an integer n >= 0, exactly (§7)."""
    return math.isqrt(int(n))


def trace_step_int(trace: np.ndarray, pre: np.ndarray, rule: LearningRule) -> np.ndarray:
    """Presynaptic trace (§3): ``x' = min(trunc(x (4096 - trace_decay) / 4096) + trace_increment * pre,
    2**trace_bits - 1)``; x >= 0, so the truncation is a right shift of the product."""
    decayed = (np.asarray(trace, dtype=np.int64) * (SPEC.decay_unity - rule.trace_decay)) >> SPEC.decay_bits
    return np.minimum(decayed + rule.trace_increment * np.asarray(pre, dtype=np.int64), rule.trace_max)


def surrogate_int(v: np.ndarray, vth: np.ndarray | None, rule: LearningRule) -> np.ndarray:
    """Postsynaptic factor h (§4): ``table[|v - (vth << 6)| >> surrogate_shift]``, 0 past the table's end;
    v is the voltage before reset. ``vth=None`` (a non-spiking readout): h = 1."""
    v = np.asarray(v, dtype=np.int64)
    if vth is None:
        return np.ones(v.shape, dtype=np.int64)
    distance = np.abs(v - (np.asarray(vth, dtype=np.int64) << SPEC.state_shift)) >> rule.surrogate_shift
    table = np.asarray((*rule.surrogate_table, 0), dtype=np.int64)
    return table[np.minimum(distance, len(rule.surrogate_table))]


def learning_step_int(state: LearningState, pre: np.ndarray, v: np.ndarray, vth: np.ndarray | None,
                      error: np.ndarray, t: int, rule: LearningRule) -> tuple[LearningState, np.ndarray]:
    """One learning step of one layer (docs/onchip-learning.md §3 - §8), in this order:

        x    = trace_step_int(trace, pre)                               §3
        h    = surrogate_int(v, vth);  e = saturate(error)              §4, §5
        g_ij = e_i h_i x_j                                              (exact integer product)
        m    = sat(m - R(m, momentum_shift) + R(g, product_shift))      §6, beta = 1 - 2**-momentum_shift
        T-BSO: s[t] = sat(s[t] - R(s[t], s2) + R(sum(g^2) // (n_out n_in), p2));
               theta = (flip_threshold * isqrt(s[t])) >> threshold_shift                       §7
        BSO:   theta = flip_threshold
        theta_p = theta (p + 1) // P for member p = i mod P of a population (before >> threshold_shift) §14
        flip = W m > theta_p  (strict), only when (counter + 1) % t_epoch == 0                §6
        W[flip] = -W[flip];  BSO: m[flip] = 0;  counter += 1
        bias: b = sat(b - e h) (learned bias, bias_bits > 0)                                  §15
        population_rule "counter": §6 - §7 replaced by hardware/learning_counter.py's step      §20

    R is :func:`round_shift_int` with the rule's rounding; its random words come from
    :func:`random_words_int` keyed by (seed, counter), streams 0 (m decay), 1 (product), 2 and 3 (s[t]).
    Returns the new state and the (n_out, n_in) bool mask of flipped synapses."""
    weight = np.asarray(state.weight)
    n_out, n_in = weight.shape
    counter = int(state.counter)
    stochastic = rule.rounding == "stochastic"

    def words(size: int, stream: int) -> np.ndarray | None:
        return random_words_int(rule.seed, counter, size, stream) if stochastic else None

    trace = trace_step_int(state.trace, pre, rule)
    post = saturate_error_int(error, rule) * surrogate_int(v, vth, rule)  # e_i h_i
    if rule.shared_counter:  # §20: a shared accumulator per class and input in place of §6 - §7
        product_words = _shaped(words(weight.size, 1), weight)
        step = round_shift_int(class_products_int(post, trace, rule.population), rule.product_shift, rule.rounding,
                               None if product_words is None else product_words[::rule.population])
        new_weight, momentum, flips = counter_step_int(weight, state.momentum, step, counter, rule)
        return LearningState(weight=new_weight, momentum=momentum, trace=trace, second_moment=state.second_moment,
                             counter=counter + 1, bias=_learned_bias(state, post, rule)), flips
    product = post[:, None] * trace[None, :]
    momentum = np.asarray(state.momentum, dtype=np.int64)
    decay = round_shift_int(momentum, rule.momentum_shift, rule.rounding, _shaped(words(momentum.size, 0), momentum))
    step = round_shift_int(product, rule.product_shift, rule.rounding, _shaped(words(product.size, 1), product))
    momentum = np.clip(momentum - decay + step, -rule.momentum_max, rule.momentum_max)
    second_moment = np.asarray(state.second_moment, dtype=np.int64)
    if rule.variant == "tbso":
        mean_square = (int(np.sum(post * post)) * int(np.sum(trace * trace))) // (n_out * n_in)
        current = int(second_moment[t])
        updated = current - int(_round_scalar(current, rule.second_moment_shift, rule, words, 2))
        updated += int(_round_scalar(mean_square, rule.second_moment_product_shift, rule, words, 3))
        updated = min(max(updated, 0), rule.second_moment_max)
        second_moment = second_moment.copy()
        second_moment[t] = updated
        theta = member_thresholds_int(rule.flip_threshold * isqrt_int(updated), n_out, rule) >> rule.threshold_shift
    else:
        theta = member_thresholds_int(rule.flip_threshold, n_out, rule)
    if (counter + 1) % rule.t_epoch == 0:
        flips = weight.astype(np.int64) * momentum > theta
    else:
        flips = np.zeros(weight.shape, dtype=bool)
    new_weight = np.where(flips, -weight, weight).astype(np.int8)
    if rule.variant == "bso":
        momentum = np.where(flips, 0, momentum)
    return LearningState(weight=new_weight, momentum=momentum, trace=trace, second_moment=second_moment,
                         counter=counter + 1, bias=_learned_bias(state, post, rule)), flips


def _learned_bias(state: LearningState, post: np.ndarray, rule: LearningRule) -> np.ndarray:
    """The learned bias after a step (§15): ``b = sat(b - e h)``; unchanged (zeros) without one."""
    bias = np.zeros(len(post), np.int64) if state.bias is None else np.asarray(state.bias, dtype=np.int64)
    return np.clip(bias - post, -rule.bias_max, rule.bias_max) if rule.learns_bias else bias


def _shaped(words: np.ndarray | None, like: np.ndarray) -> np.ndarray | None:
    return None if words is None else words.reshape(like.shape)


def _round_scalar(value: int, shift: int, rule: LearningRule, words, stream: int) -> int:
    """R of a scalar (the second moment and its input, §7): word 0 of ``stream``."""
    stream_words = words(1, stream)
    return int(round_shift_int(np.int64(value), shift, rule.rounding,
                               None if stream_words is None else stream_words[0]))


def init_learning_state(layer: FixedPointLayer, rule: LearningRule) -> LearningState:
    """Initial state of a learning layer: its deployed signs, zero momenta, traces and second moments."""
    n_out, n_in = layer.weight.shape
    return LearningState(weight=np.asarray(layer.weight, dtype=np.int8).copy(),
                         momentum=np.zeros((n_out, n_in), dtype=np.int64), trace=np.zeros(n_in, dtype=np.int64),
                         second_moment=np.zeros(rule.time_steps, dtype=np.int64), counter=0,
                         bias=np.zeros(n_out, dtype=np.int64))


def with_layer_weight(fx_net: FixedPointNetwork, layer: int, weight: np.ndarray) -> FixedPointNetwork:
    """``fx_net`` with layer ``layer``'s binary signs replaced by ``weight`` (e.g. learned ones)."""
    layers = list(fx_net.layers)
    layers[layer] = replace(layers[layer], weight=np.asarray(weight, dtype=np.int64))
    return replace(fx_net, layers=tuple(layers))


def _record_buffers(fx_net: FixedPointNetwork, index: int, samples: int, steps: int,
                    rule: LearningRule) -> dict[str, np.ndarray]:
    layer = fx_net.layers[index]
    n_out, n_in = layer.weight.shape
    lead = (samples, steps)
    buffers = {"trace": np.zeros((*lead, n_in), np.int64), "momentum": np.zeros((*lead, n_out, n_in), np.int64),
               "weight": np.zeros((*lead, n_out, n_in), np.int8),
               "second_moment": np.zeros((*lead, rule.time_steps), np.int64),
               "error": np.zeros((*lead, n_out), np.int64), "surrogate": np.zeros((*lead, n_out), np.int64),
               "bias": np.zeros((*lead, n_out), np.int64)}
    for k in range(index, len(fx_net.layers)):
        shape = fx_net.layers[k].output_shape
        buffers[f"spikes/{k}"] = np.zeros((*lead, *shape), np.int8)
        buffers[f"v/{k}"] = np.zeros((*lead, *shape), np.int64)
    return buffers


class SimLearner:
    """The ``"sim"`` :class:`Learner`: the NumPy simulator's step functions (hardware/simulator.py) with
    layer ``layer`` learning by :func:`learning_step_int` (docs/onchip-learning.md §11).

    Per sample: u, v, synaptic delays and traces start at zero; weights, momenta, second moments and the
    counter persist. Per step t of the sample's T + latency steps, as in docs/fixed-point.md §5.1, the
    layers spike first; then, for t in :func:`learning_window`, the learning layer learns from the input it
    received this step (its input of step t - 1, delivered through the synaptic delay), its voltage before
    reset and the error. The learning layer delays its input, not its sum: the synaptic input it receives
    at step t is computed then from its input of step t - 1 with the weights after the learning phase of
    step t - 1, so a flip acts on the next step, as in the float rule (§11). Layers before the
    learning layer do not change, so their spikes are computed for all samples at once by ``simulate``."""

    name = "sim"

    def __init__(self, fx_net: FixedPointNetwork, rule: LearningRule, layer: int = -1,
                 state: LearningState | None = None) -> None:
        refuse_recurrent(fx_net)
        self.fx_net = fx_net
        self.rule = rule
        self.layer = check_learning_layer(fx_net, layer, rule)
        self._state = init_learning_state(fx_net.layers[self.layer], rule) if state is None else state
        if self._state.bias is None:
            self._state = self._state._replace(bias=np.zeros(fx_net.layers[self.layer].num_neurons, np.int64))

    @property
    def state(self) -> LearningState:
        return self._state

    def network(self) -> FixedPointNetwork:
        """The network with the learned signs (and, §15, the learned biases) in the learning layer."""
        learned = with_layer_weight(self.fx_net, self.layer, self._state.weight)
        if not self.rule.learns_bias:
            return learned
        bias_mant = learned_bias_mant_int(self.fx_net.layers[self.layer].bias_mant, self._state.bias, self.rule)
        return with_layer_bias(learned, self.layer, bias_mant)

    def _neuron(self, bias: np.ndarray) -> NeuronParams:
        """The learning layer's neuron constants with the learned biases b (§15)."""
        layer = self.fx_net.layers[self.layer]
        return neuron_params(layer)._replace(
            bias=bias_int(learned_bias_mant_int(layer.bias_mant, bias, self.rule), layer.bias_exp))

    def run(self, inputs: np.ndarray, labels: np.ndarray | None = None, errors: np.ndarray | None = None,
            record: bool = False) -> LearningRecord:
        rule, fx_net, index = self.rule, self.fx_net, self.layer
        inputs, labels, errors = check_learning_inputs(fx_net, rule, index, inputs, labels, errors)
        layers = fx_net.layers
        count, samples = len(layers), inputs.shape[1]
        steps = rule.time_steps + count
        padded = append_zero_steps(inputs, count)
        if index > 0:
            front = FixedPointNetwork(profile=fx_net.profile, input_shape=fx_net.input_shape, layers=layers[:index])
            layer_inputs = simulate(front, padded).spikes[-1].astype(np.int64)
        else:
            layer_inputs = padded
        bounds = [SPEC.input_max if k == 0 else 1 for k in range(count)]
        synapses = {k: synapse_params(layers[k], bounds[k]) for k in range(index, count)}
        neurons = {k: neuron_params(layers[k]) for k in range(index, count)}
        state = self._state
        learner_neuron = neurons[index] = self._neuron(state.bias)
        before_reset = learner_neuron._replace(spiking=False)  # the same update without firing: v before reset
        vth = np.asarray(layers[index].vth, dtype=np.int64) if layers[index].spiking else None
        window = learning_window(index, rule)
        feedback = (feedback_matrix_int(layers[index].num_neurons, layers[-1].num_neurons // rule.population,
                                        rule.feedback_seed) if rule.feedback_alignment else None)
        synapses[index] = synapses[index]._replace(matrix=_matrix(state.weight, synapses[index].matrix.dtype))
        predictions = np.zeros(samples, np.int64)
        flip_counts = np.zeros(samples, np.int64)
        events: list[np.ndarray] = []
        buffers = _record_buffers(fx_net, index, samples, steps, rule) if record else {}
        for n in range(samples):
            state = state._replace(trace=np.zeros_like(state.trace))
            zeros = {k: np.zeros((1, *layers[k].output_shape), np.int64) for k in range(index, count)}
            neuron_states = {k: _zero_state(zeros[k]) for k in range(index, count)}
            pending = dict(zeros)
            previous_input = np.zeros((1, *layers[index].input_shape), np.int64)
            summed = np.zeros(layers[-1].output_shape, np.int64)
            error = surrogate = np.zeros(layers[index].num_neurons, np.int64)
            for t in range(steps):
                x = layer_inputs[t, n:n + 1]
                delivered_input = previous_input
                previous_input = x
                v_before = None
                for k in range(index, count):
                    if k == index:  # the learning layer delays its input, summed with the latest weights (§11)
                        a = synapse_step_int(delivered_input, synapses[k])
                    else:
                        a = pending[k]
                        if t + 1 < steps:
                            pending[k] = synapse_step_int(x, synapses[k])
                    if k == index and vth is not None:
                        v_before = lif_step_int(a, neuron_states[k], before_reset, t)[1].v
                    fired, neuron_states[k] = lif_step_int(a, neuron_states[k], neurons[k], t)
                    if record:
                        buffers[f"spikes/{k}"][n, t] = fired[0]
                        buffers[f"v/{k}"][n, t] = neuron_states[k].v[0]
                    x = fired
                summed += x[0]
                if t in window:
                    own = neuron_states[index]
                    if feedback is not None:  # the output layer's error of this step through B (§18)
                        out = neurons[count - 1]
                        current = neuron_states[count - 1].u[0] + (out.bias if t >= out.bias_delay else 0)
                        class_error = readout_error_int(current, int(labels[n]), rule)[::rule.population]
                        error = feedback_error_int(class_error, feedback, rule)
                    elif labels is not None:
                        bias = learner_neuron.bias if t >= learner_neuron.bias_delay else 0
                        error = readout_error_int(own.u[0] + bias, int(labels[n]), rule)
                    else:
                        error = errors[t - window.start, n]
                    v = own.v[0] if v_before is None else v_before[0]
                    surrogate = surrogate_int(v, vth, rule)
                    state, flips = learning_step_int(state, delivered_input.reshape(-1), v, vth, error,
                                                     t - window.start, rule)
                    if rule.learns_bias:  # the new biases act from the next step on, as flips do (§15)
                        learner_neuron = neurons[index] = self._neuron(state.bias)
                        before_reset = learner_neuron._replace(spiking=False)
                    if flips.any():
                        synapses[index] = synapses[index]._replace(
                            matrix=_matrix(state.weight, synapses[index].matrix.dtype))
                        rows, cols = np.nonzero(flips)
                        events.append(np.stack([np.full(rows.size, n), np.full(rows.size, t), rows, cols], axis=1))
                        flip_counts[n] += rows.size
                if record:
                    for name, value in (("trace", state.trace), ("momentum", state.momentum),
                                        ("weight", state.weight), ("second_moment", state.second_moment),
                                        ("error", error), ("surrogate", surrogate), ("bias", state.bias)):
                        buffers[name][n, t] = value
            last = layers[-1]
            readout = neuron_states[count - 1].v[0] if not last.spiking else summed
            population = rule.population  # §14; 1 for a hidden layer without feedback alignment
            predictions[n] = int(np.argmax(readout.reshape(-1, population).sum(axis=1)))
        self._state = state
        flip_events = np.concatenate(events).astype(np.int64) if events else np.zeros((0, 4), np.int64)
        return LearningRecord(predictions=predictions, flips=flip_counts, flip_events=flip_events, state=state,
                              steps=buffers)


def refuse_recurrent(fx_net: FixedPointNetwork) -> None:
    """ValueError for a network with a recurrent layer (docs/fixed-point.md §4.9): the learners' loops do not
    run recurrent synapses, so they would learn on another network than the one deployed."""
    for layer in fx_net.layers:
        if layer.recurrent:
            raise ValueError(f"layer {layer.name!r} is recurrent (recurrent_weight, docs/fixed-point.md §4.9); the "
                             "on-chip learners run feed-forward networks only")


def _matrix(weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The simulator's dense matrix (n_in, n_out) for signs (n_out, n_in) (hardware/simulator.py)."""
    return np.ascontiguousarray(np.asarray(weight).T, dtype=dtype)


def _zero_state(zeros: np.ndarray) -> NeuronState:
    return NeuronState(u=zeros.copy(), v=zeros.copy())

