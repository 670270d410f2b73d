"""On-chip learning rule of docs/onchip-learning.md, written again with torch integer tensors (CUDA when
available): the independent reference the NumPy rule (``hardware/learning.py``) is tested against.

It shares with the NumPy rule only the spec (``hardware/learning_rule.py``, ``learner.py``: the rule's fields,
the hash constants, the containers, input checks) and uses the torch integer reference of the network for the
neurons and synapses: the pure step functions of ``hardware/torch_kernels.py`` and, for the layers in front
of the learning one, ``hardware/torch_reference.py``. Roundings are spelled with torch's own operators
(``torch.div`` with ``rounding_mode``, ``torch.remainder``), the integer square root by a float estimate
corrected in integers, so that a shared mistake is unlikely.

- :func:`torch_learning_step` ``(state, pre, v, vth, error, t, rule) -> (state, flips)``: one step (tensors).
- :func:`torch_readout_error` ``(current, label, rule) -> error``: the output layer's pooled on-chip error.
- :func:`torch_feedback_matrix`, :func:`torch_feedback_error`: feedback alignment's B and projected error (§18).
- :class:`TorchLearner` ``(fx_net, rule, layer=-1, device=None)``: the ``"torch"`` Learner.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from .learner import LearningRecord, LearningState, check_learning_inputs, check_learning_layer, learning_window
from .learning import refuse_recurrent
from .learning_rule import HASH_GOLDEN, HASH_MASK, HASH_MULTIPLIERS, LearningRule
from .network import FixedPointNetwork, append_zero_steps
from .spec import SPEC
from .torch_kernels import (
    LIFState,
    NeuronConstants,
    SynapseConstants,
    lif_step,
    neuron_constants,
    pow2_shift,
    synapse_constants,
    synaptic_current,
)
from .torch_reference import TorchReference, default_device

__all__ = [
    "TorchLearner",
    "torch_feedback_error",
    "torch_feedback_matrix",
    "torch_hash32",
    "torch_isqrt",
    "torch_learning_step",
    "torch_readout_error",
    "torch_round_shift",
    "torch_surrogate",
]


def torch_hash32(x: Tensor) -> Tensor:
    """The 32-bit mixing hash of docs/onchip-learning.md §8 on int64 tensors."""
    x = torch.bitwise_and(x, HASH_MASK)
    for multiplier, shift in zip(HASH_MULTIPLIERS, (16, 15), strict=True):
        x = torch.bitwise_xor(x, torch.bitwise_right_shift(x, shift))
        x = torch.remainder(x * multiplier, HASH_MASK + 1)
    return torch.bitwise_xor(x, torch.bitwise_right_shift(x, 16))


def _words(rule: LearningRule, counter: int, size: int, stream: int, device: torch.device) -> Tensor:
    """Random words of learning step ``counter`` (§8): hash32(key xor (4 i + stream))."""
    seed_word = torch.tensor([(rule.seed + counter * HASH_GOLDEN) % (HASH_MASK + 1)], dtype=torch.int64,
                             device=device)
    key = torch_hash32(seed_word)
    index = torch.arange(size, dtype=torch.int64, device=device) * 4 + stream
    return torch_hash32(torch.bitwise_xor(index, key))


def torch_round_shift(y: Tensor, shift: int, rounding: str, words: Tensor | None = None) -> Tensor:
    """y / 2**shift rounded: half away from zero, or stochastically with ``words`` (§8)."""
    if shift == 0:
        return y
    unit = 1 << shift
    if rounding == "nearest":
        magnitude = torch.div(y.abs() + unit // 2, unit, rounding_mode="floor")
        return torch.where(y < 0, -magnitude, magnitude)
    floor = torch.div(y, unit, rounding_mode="floor")
    return floor + (torch.remainder(y, unit) > torch.remainder(words, unit)).to(torch.int64)


def torch_isqrt(n: Tensor) -> Tensor:
    """floor(sqrt(n)) of a 0-d int64 tensor n >= 0: float estimate, then integer correction (§7)."""
    root = torch.sqrt(n.to(torch.float64)).floor().to(torch.int64)
    while bool(root * root > n):
        root = root - 1
    while bool((root + 1) * (root + 1) <= n):
        root = root + 1
    return root


def torch_surrogate(v: Tensor, vth: Tensor | None, rule: LearningRule) -> Tensor:
    """Postsynaptic factor h from the voltage before reset (§4); 1 for a readout (vth None)."""
    if vth is None:
        return torch.ones_like(v)
    bucket = torch.bitwise_right_shift((v - vth * (1 << SPEC.state_shift)).abs(), rule.surrogate_shift)
    table = torch.tensor([*rule.surrogate_table, 0], dtype=torch.int64, device=v.device)
    return table[bucket.clamp(max=len(rule.surrogate_table))]


def torch_learning_step(state: LearningState, pre: Tensor, v: Tensor, vth: Tensor | None, error: Tensor, t: int,
                        rule: LearningRule) -> tuple[LearningState, Tensor]:
    """One learning step (docs/onchip-learning.md §3 - §8) on int64 tensors; the state's weight is int8.
    Returns the new state and the bool flip mask (n_out, n_in); nothing is mutated."""
    device = state.momentum.device
    counter = int(state.counter)
    stochastic = rule.rounding == "stochastic"
    n_out, n_in = state.momentum.shape

    def words(size: int, stream: int) -> Tensor | None:
        return _words(rule, counter, size, stream, device) if stochastic else None

    decayed = torch.div(state.trace * (SPEC.decay_unity - rule.trace_decay), SPEC.decay_unity, rounding_mode="trunc")
    trace = torch.clamp(decayed + pre * rule.trace_increment, max=rule.trace_max)
    post = error.clamp(-rule.error_max, rule.error_max) * torch_surrogate(v, vth, rule)
    if rule.shared_counter:  # §20 replaces §6 - §7
        weight, momentum, flips = _torch_counter_step(state, post, trace, words(n_out * n_in, 1), rule)
        bias = torch.zeros_like(post) if state.bias is None else state.bias
        bias = (bias - post).clamp(-rule.bias_max, rule.bias_max) if rule.learns_bias else bias
        return LearningState(weight=weight, momentum=momentum, trace=trace, second_moment=state.second_moment,
                             counter=counter + 1, bias=bias), flips
    product = torch.outer(post, trace)

    def shaped(tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.reshape(n_out, n_in)

    momentum = (state.momentum - torch_round_shift(state.momentum, rule.momentum_shift, rule.rounding,
                                                   shaped(words(n_out * n_in, 0)))
                + torch_round_shift(product, rule.product_shift, rule.rounding, shaped(words(n_out * n_in, 1))))
    momentum = momentum.clamp(-rule.momentum_max, rule.momentum_max)
    second_moment = state.second_moment
    if rule.variant == "tbso":
        mean_square = torch.div((post * post).sum() * (trace * trace).sum(), n_out * n_in, rounding_mode="floor")
        old = second_moment[t]
        decay_word, input_word = (None, None) if not stochastic else (words(1, 2)[0], words(1, 3)[0])
        new = (old - torch_round_shift(old, rule.second_moment_shift, rule.rounding, decay_word)
               + torch_round_shift(mean_square, rule.second_moment_product_shift, rule.rounding, input_word))
        new = new.clamp(0, rule.second_moment_max)
        second_moment = second_moment.clone()
        second_moment[t] = new
        theta = torch.bitwise_right_shift(_member_thresholds(torch_isqrt(new) * rule.flip_threshold, n_out, rule),
                                          rule.threshold_shift)
    else:
        theta = _member_thresholds(torch.tensor(rule.flip_threshold, dtype=torch.int64, device=device), n_out, rule)
    signed = state.weight.to(torch.int64) * momentum
    flips = (signed > theta) if (counter + 1) % rule.t_epoch == 0 else torch.zeros_like(signed, dtype=torch.bool)
    weight = torch.where(flips, -state.weight, state.weight)
    if rule.variant == "bso":
        momentum = torch.where(flips, torch.zeros_like(momentum), momentum)
    bias = torch.zeros(n_out, dtype=torch.int64, device=device) if state.bias is None else state.bias
    if rule.learns_bias:  # §15: b <- sat(b - e h)
        bias = (bias - post).clamp(-rule.bias_max, rule.bias_max)
    return LearningState(weight=weight, momentum=momentum, trace=trace, second_moment=second_moment,
                         counter=counter + 1, bias=bias), flips


def _torch_counter_step(state: LearningState, post: Tensor, trace: Tensor, words: Tensor | None,
                        rule: LearningRule) -> tuple[Tensor, Tensor, Tensor]:
    """The shared-counter rule (docs/onchip-learning.md §20): class k's accumulator (row k P of the momentum)
    adds R(sum_p post_(kP+p) trace, product_shift); past +-theta the first member whose sign can move flips and
    theta leaves the accumulator, which a flip step then clips to +-theta. Returns (weight, momentum, flips)."""
    population, (n_out, n_in), counter = rule.population, state.weight.shape, int(state.counter)
    gradient = torch.outer(post.reshape(-1, population).sum(dim=1), trace)
    rows = None if words is None else words.reshape(n_out, n_in)[::population]
    total = state.momentum[::population] + torch_round_shift(gradient, rule.product_shift, rule.rounding, rows)
    accumulator = total.clamp(-rule.counter_max, rule.counter_max)
    flips = torch.zeros((n_out, n_in), dtype=torch.bool, device=post.device)
    if (counter + 1) % rule.t_epoch == 0:
        growth = (rule.counter_threshold * counter) >> rule.counter_growth_shift if rule.counter_growth_shift else 0
        theta = min(rule.counter_threshold + growth, rule.counter_max)
        members = state.weight.to(torch.int64).reshape(-1, population, n_in)
        down = (accumulator > theta) & (members == 1).any(dim=1)
        up = (accumulator < -theta) & (members == -1).any(dim=1)
        # the lowest-index member with the sign to move: the first 1 of a cumulative count along the members
        first_plus = ((members == 1).cumsum(dim=1) == 1) & (members == 1)
        first_minus = ((members == -1).cumsum(dim=1) == 1) & (members == -1)
        flips = ((first_plus & down.unsqueeze(1)) | (first_minus & up.unsqueeze(1))).reshape(n_out, n_in)
        accumulator = (accumulator - theta * down.to(torch.int64) + theta * up.to(torch.int64)).clamp(-theta, theta)
    momentum = torch.zeros_like(state.momentum)
    momentum[::population] = accumulator
    return torch.where(flips, -state.weight, state.weight), momentum, flips


def _member_thresholds(theta: Tensor, n_out: int, rule: LearningRule) -> Tensor:
    """(n_out, 1): theta (p + 1) // P for member p = i mod P of each class (docs/onchip-learning.md §14)."""
    population = rule.member_population  # a feedback-alignment rule's population is the output's (§18)
    members = torch.remainder(torch.arange(n_out, dtype=torch.int64, device=theta.device), population) + 1
    return torch.div(theta * members, population, rounding_mode="floor").reshape(n_out, 1)


def torch_readout_error(current: Tensor, label: int, rule: LearningRule) -> Tensor:
    """The output layer's on-chip error (docs/onchip-learning.md §5, §14): each class's P currents summed,
    floor-divided by P 2**error_shift, clipped to +-A, minus the class's target (+A for the label, else -A),
    repeated for the class's P neurons."""
    population = rule.population
    pooled = current.reshape(-1, population).sum(dim=1)
    scaled = torch.div(pooled, population * (1 << rule.error_shift), rounding_mode="floor")
    if rule.error_shape == "hinge":  # §21: -A, +A to the label and its first strongest rival if it leads by < A
        others = scaled.clone()
        others[label] = torch.iinfo(torch.int64).min
        rival = torch.nonzero(others == others.max())[0, 0]
        hinge = torch.zeros_like(scaled)
        hinge[rival] = (scaled[label] - scaled[rival] < rule.error_target).to(torch.int64) * rule.error_target
        hinge[label] = -hinge[rival]
        return hinge.repeat_interleave(population)
    target = torch.full_like(scaled, -rule.error_target)
    target[label] = rule.error_target
    error = (scaled.clamp(-rule.error_target, rule.error_target) - target).clamp(-rule.error_max, rule.error_max)
    return error.repeat_interleave(population)


def torch_feedback_matrix(n_hidden: int, n_classes: int, seed: int, device: torch.device) -> Tensor:
    """B (n_hidden, n_classes) of +-1 (docs/onchip-learning.md §18): the top bit of hash32(hash32(seed) xor
    (i n_classes + k)), +1 where set."""
    key = torch_hash32(torch.tensor([seed], dtype=torch.int64, device=device))
    index = torch.arange(n_hidden * n_classes, dtype=torch.int64, device=device)
    top = torch.bitwise_right_shift(torch_hash32(torch.bitwise_xor(index, key)), 31)
    return (top * 2 - 1).reshape(n_hidden, n_classes)


def torch_feedback_error(class_error: Tensor, matrix: Tensor, rule: LearningRule) -> Tensor:
    """The hidden layer's projected error (§18): B e rounded half away from zero by 2**feedback_shift, then
    saturated to the error register."""
    projected = (matrix * class_error.reshape(1, -1)).sum(dim=1)
    if rule.feedback_shift:
        unit = 1 << rule.feedback_shift
        magnitude = torch.div(projected.abs() + unit // 2, unit, rounding_mode="floor")
        projected = torch.where(projected < 0, -magnitude, magnitude)
    return projected.clamp(-rule.error_max, rule.error_max)


class TorchLearner:
    """The ``"torch"`` Learner: TorchReference's neurons and synapses with :func:`torch_learning_step`; the
    same contract and step order as the simulator's learner (docs/onchip-learning.md §11)."""

    name = "torch"

    def __init__(self, fx_net: FixedPointNetwork, rule: LearningRule, layer: int = -1,
                 state: LearningState | None = None, device: str | torch.device | None = None) -> None:
        refuse_recurrent(fx_net)
        self.fx_net = fx_net
        self.rule = rule
        self.layer = check_learning_layer(fx_net, layer, rule)
        self.device = default_device() if device is None else torch.device(device)
        chosen = fx_net.layers[self.layer]
        if state is None:
            n_out, n_in = chosen.weight.shape
            state = LearningState(weight=np.asarray(chosen.weight, np.int8), momentum=np.zeros((n_out, n_in), np.int64),
                                  trace=np.zeros(n_in, np.int64), second_moment=np.zeros(rule.time_steps, np.int64),
                                  counter=0)
        if state.bias is None:
            state = state._replace(bias=np.zeros(chosen.num_neurons, np.int64))
        self._state = self._to_device(state)
        self._neuron_base = neuron_constants(chosen, self.device, SPEC)
        self._bias_registers = tuple(torch.as_tensor(np.array(value), dtype=torch.int64, device=self.device)
                                     for value in (chosen.bias_mant, chosen.bias_exp))

    def _to_device(self, state: LearningState) -> LearningState:
        def tensor(value, dtype):
            return torch.as_tensor(np.asarray(value), dtype=dtype).to(self.device)

        return LearningState(weight=tensor(state.weight, torch.int8), momentum=tensor(state.momentum, torch.int64),
                             trace=tensor(state.trace, torch.int64),
                             second_moment=tensor(state.second_moment, torch.int64), counter=int(state.counter),
                             bias=tensor(state.bias, torch.int64))

    def _learned_bias_mant(self, bias: Tensor) -> Tensor:
        """The learning layer's bias_mant with the learned biases b (docs/onchip-learning.md §15):
        clip(bias_mant + (b >> bias_shift)) to the 13-bit register."""
        learned = self._bias_registers[0] + torch.bitwise_right_shift(bias, self.rule.bias_shift)
        return learned.clamp(SPEC.bias_mant_min, SPEC.bias_mant_max)

    def _neuron(self, bias: Tensor) -> NeuronConstants:
        """The learning layer's neuron constants with the learned biases (§15; docs/fixed-point.md §3.4)."""
        if not self.rule.learns_bias:
            return self._neuron_base
        return self._neuron_base._replace(bias=pow2_shift(self._learned_bias_mant(bias), self._bias_registers[1]))

    @property
    def state(self) -> LearningState:
        """The state as NumPy arrays (the Learner contract)."""
        s = self._state
        return LearningState(weight=s.weight.cpu().numpy(), momentum=s.momentum.cpu().numpy(),
                             trace=s.trace.cpu().numpy(), second_moment=s.second_moment.cpu().numpy(),
                             counter=s.counter, bias=s.bias.cpu().numpy())

    def network(self) -> FixedPointNetwork:
        """The network with the learned signs (and, §15, the learned biases) in the learning layer."""
        layers = list(self.fx_net.layers)
        changes = {"weight": self.state.weight.astype(np.int64)}
        if self.rule.learns_bias:
            changes["bias_mant"] = self._learned_bias_mant(self._state.bias).cpu().numpy()
        layers[self.layer] = replace(layers[self.layer], **changes)
        return replace(self.fx_net, layers=tuple(layers))

    @torch.no_grad()
    def run(self, inputs: np.ndarray, labels: np.ndarray | None = None, errors: np.ndarray | None = None,
            record: bool = False) -> LearningRecord:
        rule, fx_net, index, device = self.rule, self.fx_net, self.layer, self.device
        inputs, labels, errors = check_learning_inputs(fx_net, rule, index, inputs, labels, errors)
        layers = fx_net.layers
        count, samples = len(layers), inputs.shape[1]
        steps = rule.time_steps + count
        padded = append_zero_steps(inputs, count)
        if index > 0:
            front = FixedPointNetwork(profile=fx_net.profile, input_shape=fx_net.input_shape, layers=layers[:index])
            feed = torch.as_tensor(TorchReference(front, device).run(padded).spikes[-1], device=device)
        else:
            feed = torch.as_tensor(padded, device=device)
        feed = feed.to(torch.int64)
        synapses = {k: synapse_constants(layers[k], SPEC.input_max if k == 0 else 1, device, SPEC)
                    for k in range(index, count)}
        neurons = {k: neuron_constants(layers[k], device, SPEC) for k in range(index, count)}
        neurons[index] = self._neuron(self._state.bias)
        vth = (torch.tensor(np.array(layers[index].vth), dtype=torch.int64, device=device)
               if layers[index].spiking else None)
        window = learning_window(index, rule)
        feedback = (torch_feedback_matrix(layers[index].num_neurons, layers[-1].num_neurons // rule.population,
                                          rule.feedback_seed, device) if rule.feedback_alignment else None)
        state = self._state
        learned = synapses[index]  # the learned signs replace its weights, in the dtype proven exact for them

        def with_weights(weight: Tensor) -> SynapseConstants:
            return learned._replace(weight=weight.to(learned.weight.dtype))

        synapses[index] = with_weights(state.weight)
        predictions = np.zeros(samples, np.int64)
        flip_counts = np.zeros(samples, np.int64)
        events: list[np.ndarray] = []
        trail: dict[str, list[Tensor]] = {}
        for n in range(samples):
            state = state._replace(trace=torch.zeros_like(state.trace))
            u = {k: torch.zeros((1, *layers[k].output_shape), dtype=torch.int64, device=device) for k in synapses}
            v = {k: value.clone() for k, value in u.items()}
            delayed = {k: value.clone() for k, value in u.items()}
            last_input = torch.zeros((1, *layers[index].input_shape), dtype=torch.int64, device=device)
            spike_sum = torch.zeros(layers[-1].output_shape, dtype=torch.int64, device=device)
            error = surrogate = torch.zeros(layers[index].num_neurons, dtype=torch.int64, device=device)
            for t in range(steps):
                x = feed[t, n:n + 1]
                pre, last_input = last_input, x
                v_before = None
                for k in range(index, count):
                    if k == index:  # input delayed, summed with the latest weights (docs/onchip-learning.md §11)
                        arriving = synaptic_current(pre, synapses[k])
                    else:
                        arriving, delayed[k] = delayed[k], synaptic_current(x, synapses[k])
                    step = lif_step(arriving, LIFState(u[k], v[k]), neurons[k], t >= neurons[k].bias_start)
                    if k == index and vth is not None:
                        v_before = step.v_before_reset
                    fired, (u[k], v[k]) = step.spikes, step.state
                    if record:
                        trail.setdefault(f"spikes/{k}", []).append(fired[0].to(torch.int8))
                        trail.setdefault(f"v/{k}", []).append(v[k][0])
                    x = fired.to(torch.int64)
                spike_sum += x[0]
                if t in window:
                    if feedback is not None:  # the output's error of this step through B (onchip-learning.md §18)
                        out = neurons[count - 1]
                        current = u[count - 1][0] + (out.bias if t >= out.bias_start else 0)
                        class_error = torch_readout_error(current, int(labels[n]), rule)[::rule.population]
                        error = torch_feedback_error(class_error, feedback, rule)
                    elif labels is not None:
                        neuron = neurons[index]
                        current = u[index][0] + (neuron.bias if t >= neuron.bias_start else 0)
                        error = torch_readout_error(current, int(labels[n]), rule)
                    else:
                        error = torch.as_tensor(errors[t - window.start, n], device=device)
                    voltage = v[index][0] if v_before is None else v_before[0]
                    surrogate = torch_surrogate(voltage, vth, rule)
                    state, flips = torch_learning_step(state, pre.reshape(-1), voltage, vth, error, t - window.start,
                                                       rule)
                    if rule.learns_bias:  # the new biases act from the next step on (docs/onchip-learning.md §15)
                        neurons[index] = self._neuron(state.bias)
                    if bool(flips.any()):
                        synapses[index] = with_weights(state.weight)
                        rows, cols = (tensor.cpu().numpy() for tensor in torch.nonzero(flips, as_tuple=True))
                        events.append(np.stack([np.full(rows.size, n), np.full(rows.size, t), rows, cols], axis=1))
                        flip_counts[n] += rows.size
                if record:
                    for name, value in (("trace", state.trace), ("momentum", state.momentum), ("weight", state.weight),
                                        ("second_moment", state.second_moment), ("error", error),
                                        ("surrogate", surrogate), ("bias", state.bias)):
                        trail.setdefault(name, []).append(value.clone())
            readout = v[count - 1][0] if not layers[-1].spiking else spike_sum
            population = rule.population  # pooled classes (§14); 1 for a hidden layer without feedback alignment
            predictions[n] = int(torch.argmax(readout.reshape(-1, population).sum(dim=1)).item())
        self._state = state
        steps_out = {name: torch.stack(values).reshape(samples, steps, *values[0].shape).cpu().numpy()
                     for name, values in trail.items()}
        flip_events = np.concatenate(events).astype(np.int64) if events else np.zeros((0, 4), np.int64)
        return LearningRecord(predictions=predictions, flips=flip_counts, flip_events=flip_events, state=self.state,
                              steps=steps_out)

