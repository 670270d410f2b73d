"""bso-deploy's own Lava processes and their models (docs/lava.md).

- :class:`~.neuron.BsoNeuron`: the profile-``bso`` neuron of docs/fixed-point.md §3 (per-neuron vth and bias,
  layer du/dv, ``bias_delay``, zero or subtractive reset, spiking or non-spiking readout), models tagged
  ``fixed_pt`` (bit-exact) and ``floating_pt`` (the float graph).
- :class:`~.synapse.BinarySynapse` (1 bit per synapse, per-layer weight_mant/weight_exp, §4.6) and
  :class:`~.synapse.FullPrecisionSynapse` (8-bit weights, Lava's Dense rule §4.5; float weights under
  ``floating_pt``): dense or conv connectivity on a sum-pooled input (§4.2 - §4.4), one-step delay (§4.8).

Every process takes ``sample_steps``: with S > 0 it restarts (state, delay buffer and the bias-delay step
counter back to their initial values) every S steps, so one Lava run streams many samples back to back.

Lava imports and executes every module of this directory when it searches process models: keep only process
modules here, with absolute imports, and import this package only after
``bso_deploy.hardware.lava.compat.ensure_lava_importable()``. Their arithmetic is
``hardware/lava/arithmetic.py``, written from docs/fixed-point.md independently of the simulator and the torch
reference.
"""
