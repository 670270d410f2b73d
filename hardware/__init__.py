"""Fixed-point hardware model (docs/fixed-point.md, docs/onchip-learning.md).

The fixed-point core imports NumPy only: ``spec``, the network format (``layer``, ``network``,
``simulation_result``), the NumPy simulator (``step_functions``, ``fused``, ``simulator``), the quantization
(``rounding``, ``input_quantization``, ``float_layer``, ``layer_bounds``, ``quantize``) and the on-chip
learning rule (``learning_rule``, ``learning_float``, ``learner``, ``learning``). On top of it, with torch and
NIR: ``compiler``, ``calibration``, ``chain``, ``torch_reference``, ``torch_learning``, the tables ``backends``
and ``learners``, ``parity``; then ``lava`` (Lava itself is imported inside it, when used). Nothing is
imported here, so that ``import bso_deploy.hardware.simulator`` stays cheap.
"""
