"""Hidden-layer learning in the adaptation scenario (docs/onchip-learning.md §18, §19; ``AdaptationConfig.
feedback_alignment``): the last hidden layer (binary, so the network needs two hidden sizes) learns by feedback
alignment on chip, from the output layer's on-chip error through the fixed random binary matrix B of
``hardware/learning_feedback.py``, while the readout learns from its own error as in §5.

A learner of ``hardware`` trains one layer, so :class:`FeedbackAlignmentLearner` runs the two in turn on each
chunk of the stream: first the hidden layer (readout frozen, with its current signs and learned bias), then
the readout on the chunk's spikes of the updated hidden layer. Each keeps its own learning state (signs,
momenta, second moments, counters, the readout's bias) from chunk to chunk, so the rules see one continuous
stream; only the interleaving is per chunk, not per sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bso_deploy.hardware.learner import LearningRecord
from bso_deploy.hardware.learning import with_layer_weight
from bso_deploy.hardware.learning_feedback import feedback_alignment_rule
from bso_deploy.hardware.learning_rule import LearningRule

__all__ = ["FeedbackAlignmentLearner", "hidden_rule"]


def hidden_rule(readout_rule: LearningRule, fx_net: Any, config: Any, error_scale: float) -> LearningRule:
    """The feedback-alignment rule of the last hidden layer of ``fx_net`` next to ``readout_rule``
    (``learning_feedback.feedback_alignment_rule``): float threshold ``config.hidden_threshold``, B drawn from
    ``config.seed``, the readout's precision_bits and error scale."""
    layer = fx_net.layers[-2]
    if not layer.binary:
        raise ValueError(f"feedback_alignment trains the last hidden layer, and {layer.name!r} has multi-bit "
                         "synapses (the first layer is 8-bit): give two hidden sizes, e.g. --hidden 256,256")
    return feedback_alignment_rule(readout_rule, fx_net.layers[-1].num_neurons, vth=layer.vth,
                                   threshold=config.hidden_threshold, feedback_seed=config.seed,
                                   precision_bits=config.precision_bits, error_scale=error_scale)


class FeedbackAlignmentLearner:
    """The hidden layer (index -2) by feedback alignment, then the readout (index -1), on each ``run`` chunk.
    ``make_learner``: a factory of ``hardware.learners`` ``(fx_net, rule, layer, state) -> Learner``;
    ``fx_net``: the network as deployed (readout biases as compiled: a learned bias lives in the readout's
    state and is applied once, by ``network()``)."""

    def __init__(self, make_learner: Any, fx_net: Any, readout_rule: LearningRule, feedback_rule: LearningRule):
        self.make_learner, self.base = make_learner, fx_net
        self.readout_rule, self.feedback_rule = readout_rule, feedback_rule
        self.hidden_state: Any = None
        self.readout_state: Any = None
        self.hidden_flips = 0

    def _network_for_readout(self) -> Any:
        """The deployed network with the hidden layer's learned signs (the readout as deployed: its learner
        holds the learned signs and bias in its state)."""
        if self.hidden_state is None:
            return self.base
        return with_layer_weight(self.base, -2, self.hidden_state.weight)

    def network(self) -> Any:
        """The network with both layers' learned signs and the readout's learned bias."""
        readout = self._learner(self._network_for_readout(), self.readout_rule, -1, self.readout_state)
        try:
            return readout.network()
        finally:
            _close(readout)

    @property
    def state(self) -> Any:
        """The readout's learning state (what the scenario reports as the learned signs)."""
        if self.readout_state is None:
            return self._learner(self.base, self.readout_rule, -1, None).state
        return self.readout_state

    def _learner(self, fx_net: Any, rule: LearningRule, layer: int, state: Any) -> Any:
        return self.make_learner(fx_net, rule, layer=layer, state=state)

    def run(self, inputs: np.ndarray, labels: np.ndarray) -> LearningRecord:
        """Feedback alignment on ``inputs`` (T, N, ...) with ``labels``, then the readout on the same
        samples; returns the readout's record (its flips and the predictions it made while learning)."""
        hidden = self._learner(self.network(), self.feedback_rule, -2, self.hidden_state)
        try:
            record = hidden.run(inputs, labels=labels)
            self.hidden_state = hidden.state
            self.hidden_flips += len(record.flip_events)
        finally:
            _close(hidden)
        readout = self._learner(self._network_for_readout(), self.readout_rule, -1, self.readout_state)
        try:
            record = readout.run(inputs, labels=labels)
            self.readout_state = readout.state
        finally:
            _close(readout)
        return record


def _close(learner: Any) -> None:
    close = getattr(learner, "close", None)
    if close is not None:
        close()
