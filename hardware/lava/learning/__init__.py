"""On-chip learning as Lava processes (docs/onchip-learning.md; the Learner is hardware/lava/onchip.py).

- :class:`~.synapse.LearningSynapse`: 1-bit synapses that learn. Its ``fixed_pt`` model delivers the synaptic
  input in the spiking phase (docs/fixed-point.md §4.6 - §4.8) and, in Lava's learning phase, updates traces,
  momenta, second moments and signs with :func:`bso_deploy.hardware.lava.learning_arithmetic.learning_update`
  from the error that arrives on its ``error_in`` port and the voltage on ``post_in``.
- :class:`~.neuron.LearningNeuron`: the profile-``bso`` neuron of the learning layer; besides its spikes it
  sends its voltage before reset (the postsynaptic factor's input, §4) and its current u + bias(t) (the readout
  error's input, §5).
- :class:`~.error.ReadoutError`: the output layer's local error against the label (``readout_error``),
  sent to the synapse's ``error_in`` port each step.

Lava imports and executes every module of this directory when it searches process models: keep only process
modules here, and import them only after ``bso_deploy.hardware.lava.compat.ensure_lava_importable()``.
Their arithmetic lives beside this package, in ``hardware/lava/arithmetic.py`` and
``hardware/lava/learning_arithmetic.py``, written from the specs (docs/fixed-point.md, docs/onchip-learning.md)
independently of the NumPy and torch implementations.
"""
