"""The learning capacity and the upper reference of the on-chip adaptation scenario (docs/onchip-learning.md
§14 - §16; :mod:`.adaptation` runs the scenario):

- :func:`learning_fields` and :func:`learning_network`: the rule's population and learned-bias fields and the
  network the learner runs (the compiled one with a population readout, §14, and room for a learned bias, §15);
- :func:`readout_counts`: the readout's input spike counts per sample, as the chip produces them;
- :func:`logistic_reference`: ``reference_accuracy``, the accuracy that the same learnable parameters (the
  readout's weights, and its biases when they learn) reach when retrained offline in float on the same samples:
  a multinomial logistic regression on the chip's spike counts (§16);
- :func:`float_rule_reference`: the float BSO / T-BSO rule itself, offline, over several passes of the same
  samples on the chip's spikes, its signs then scored on the chip's test counts (§16).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from bso_deploy.hardware.learner import population_network
from bso_deploy.hardware.network import FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC

__all__ = ["REFERENCE_PASSES", "counter_fields", "float_rule_reference", "learning_fields", "learning_network",
           "logistic_reference", "readout_counts", "readout_spikes"]

REFERENCE_PASSES = 3  # passes of the float rule offline over the stream (a few seconds each)

LOGISTIC_ITERATIONS = 300  # L-BFGS iterations of the offline reference: converged on 1000 x 256 counts
LOGISTIC_L2 = 1e-4  # a small weight decay, so that separable data still gives a finite optimum


def _bias_exp(fx_net: FixedPointNetwork, error_shift: int) -> int:
    """The readout's bias exponent while its bias learns (§15): a readout without a deployed bias (bias_mant
    all zero, where the exponent changes nothing) gets bias_exp = error_shift (clipped to the 4-bit register), so
    that one bias_mant unit is one error unit; a deployed bias keeps its exponent (the largest, if per neuron)."""
    readout = fx_net.layers[-1]
    if np.any(np.asarray(readout.bias_mant)):
        return int(np.max(readout.bias_exp))
    return int(np.clip(error_shift, SPEC.bias_exp_min, SPEC.bias_exp_max))


def learning_fields(config: Any, fx_net: FixedPointNetwork, error_shift: int, error_scale: float = 1.0,
                    error_target: int = 0) -> dict[str, Any]:
    """The LearningRule fields of ``config``'s population and learned bias (§14, §15): ``population``;
    with ``learn_bias``, ``bias_shift`` such that the float bias moves by 2**-config.bias_shift float units per
    float error unit and step (with bias_exp = error_shift: bias_shift = config.bias_shift) and ``bias_bits``
    = 13 + bias_shift, so that the register saturates where the 13-bit bias_mant it feeds does. With
    population_rule "counter", the fields of :func:`counter_fields`."""
    fields: dict[str, Any] = {"population": config.population}
    if config.learn_bias:
        shift = max(0, config.bias_shift + _bias_exp(fx_net, error_shift) - error_shift)
        fields.update(bias_bits=SPEC.bias_mant_bits + shift, bias_shift=shift)
    if config.population_rule == "counter":
        fields.update(counter_fields(config, error_scale, error_target))
    if config.error_shape != "margin":  # §21; the margin of §5 is the rule's default
        fields["error_shape"] = config.error_shape
    return fields


def counter_fields(config: Any, error_scale: float, error_target: int, counter_bits: int = 16,
                   trace_increment: int = 64, trace_max: int = 255) -> dict[str, Any]:
    """The counter rule's integers (§20) for ``config.counter_threshold`` theta_f in float units of error x
    trace per member (the class's summed product is P E X theta_f per flip, E = error_scale, X = trace
    increment): ``product_shift`` s, the smallest for which the threshold plus the largest step,
    (P E X theta_f + P 2 error_target trace_max) / 2**s, fits the accumulator, and ``counter_threshold`` =
    round(P E X theta_f / 2**s) >= 1."""
    population = config.population
    theta = population * error_scale * trace_increment * config.counter_threshold
    largest = population * 2 * error_target * trace_max
    limit, shift = (1 << (counter_bits - 1)) - 1, 0
    while (theta + largest) / 2 ** shift > limit:
        shift += 1
    return {"population_rule": "counter", "counter_bits": counter_bits, "product_shift": shift,
            "counter_threshold": max(1, min(limit, round(theta / 2 ** shift))),
            "counter_growth_shift": config.counter_growth_shift}


def learning_network(fx_net: FixedPointNetwork, config: Any, error_shift: int) -> FixedPointNetwork:
    """The network the learner runs: ``fx_net`` with a population readout of ``config.population`` neurons
    per class (:func:`~bso_deploy.hardware.learner.population_network`) and, with ``learn_bias``, the bias
    exponent of :func:`_bias_exp`. Its pooled predictions equal ``fx_net``'s."""
    learning = population_network(fx_net, config.population)
    if not config.learn_bias:
        return learning
    readout = learning.layers[-1]
    exponent = np.full(readout.output_shape, _bias_exp(fx_net, error_shift), dtype=np.int64)
    if np.any(np.asarray(readout.bias_mant)):
        exponent = np.asarray(readout.bias_exp)
    return replace(learning, layers=(*learning.layers[:-1], replace(readout, bias_exp=exponent)))


def readout_counts(fx_net: FixedPointNetwork, inputs: np.ndarray, time_steps: int) -> np.ndarray:
    """(N, n_in) spike counts of the readout's input layer on the chip (NumPy simulator) for integer inputs
    (T, N, ...), over the T steps whose spikes reach the readout in its learning window (§5, §11): its v at
    the last step is its weight times these counts plus its bias (docs/fixed-point.md §3.7)."""
    return readout_spikes(fx_net, inputs, time_steps).sum(axis=0).reshape(inputs.shape[1], -1).astype(np.float64)


def logistic_reference(train_counts: np.ndarray, train_labels: np.ndarray, test_counts: np.ndarray,
                       test_labels: np.ndarray, num_classes: int, bias: bool, seed: int = 0) -> float:
    """Test accuracy of a float multinomial logistic regression (softmax cross-entropy, weight decay
    ``LOGISTIC_L2``, full-batch L-BFGS) trained on ``train_counts`` (N, n_in) -> labels, with a bias per class
    when ``bias`` (the learnable parameters of the chip's readout, §16). Counts are divided by their largest
    training value, which changes the optimum's scale only."""
    generator = torch.Generator().manual_seed(seed)
    scale = max(float(np.max(train_counts)), 1.0)
    x = torch.as_tensor(train_counts / scale, dtype=torch.float64)
    y = torch.as_tensor(train_labels, dtype=torch.int64)
    weight = (0.01 * torch.randn(x.shape[1], num_classes, generator=generator, dtype=torch.float64)).requires_grad_()
    offset = torch.zeros(num_classes, dtype=torch.float64, requires_grad=bias)
    parameters = [weight, offset] if bias else [weight]
    optimizer = torch.optim.LBFGS(parameters, max_iter=LOGISTIC_ITERATIONS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + offset, y) + LOGISTIC_L2 * (weight ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        scores = torch.as_tensor(test_counts / scale, dtype=torch.float64) @ weight + offset
    return float(np.mean(scores.argmax(dim=1).numpy() == np.asarray(test_labels)))


def readout_spikes(fx_net: FixedPointNetwork, inputs: np.ndarray, time_steps: int) -> np.ndarray:
    """(T, N, n_in) 0/1 spikes of the readout's input layer on the chip that reach the readout in its learning
    window (the steps :func:`readout_counts` sums)."""
    count = len(fx_net.layers)
    front = replace(fx_net, layers=fx_net.layers[:-1], quantization=fx_net.quantization[:-1])
    spikes = simulate(front, append_zero_steps(inputs, count)).spikes[-1]
    return spikes[count - 1:count - 1 + time_steps]


def float_rule_reference(float_learner: Any, images: np.ndarray, labels: np.ndarray, spikes: np.ndarray,
                         test_counts: np.ndarray, test_labels: np.ndarray, passes: int = REFERENCE_PASSES) -> float:
    """Accuracy of the float rule retrained offline: ``float_learner`` (the scenario's float readout learner,
    ``run(images, labels, first_sample, hidden=spikes)``) runs ``passes`` times over the stream driven by the
    chip's spikes (T, N, n_in); its readout's signs W (C, n_in), one scale for the layer, then score the chip's
    test counts: prediction argmax_k (W counts)_k (no bias: the float rule has none)."""
    for _ in range(passes):
        float_learner.run(images, labels, 0, hidden=spikes)
    signs = float_learner.readout.weight.detach().numpy().astype(np.float64)
    return float(np.mean(np.argmax(test_counts @ np.sign(signs).T, axis=1) == np.asarray(test_labels)))
