"""How far a trained model's deployment agrees with it: float model, integer forward and the simulator.

:func:`fixed_point_metrics` compiles a model as the deployment does (profile bso) and compares, on the same
test batches and encoder keys, the float model, the undelayed integer forward of hardware-aware training
(:class:`~bso_deploy.hardware_aware.HardwareAwareNetwork`) and the compiled network on the NumPy simulator
(backend ``sim``, docs/fixed-point.md §5). Every training run reports these figures (``metrics.json``
``fixed_point``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bso_deploy.hardware.backends import run_fixed

from .encoding import Encoder
from .hardware_aware import HardwareAwareNetwork
from .network import SpikingNetwork

__all__ = ["fixed_point_metrics"]


@torch.no_grad()
def fixed_point_metrics(model: SpikingNetwork, batches: Iterable[tuple[Tensor, Tensor]], encoder: Encoder,
                        time_steps: int, device: torch.device, input_shape: tuple[int, ...] | None = None,
                        hardware_aware: bool = False, max_samples: int | None = None,
                        key_offset: int = 1 << 40, integer_range: int | None = None) -> dict[str, Any]:
    """Deploy ``model`` (compile in profile bso for ``time_steps``) and compare on the test batches:

    float_accuracy (the float model, BatchNorm on running statistics), fixed_accuracy (the compiled network on
    the NumPy simulator, backend ``sim``, T input steps plus the latency flush), integer_forward_accuracy (the
    undelayed integer forward of hardware-aware training), float_fixed_agreement and integer_forward_agreement
    (fractions of equal predictions with the simulator), and prediction_agreement: the latter with
    ``hardware_aware`` (the trained network is the integer one), the former otherwise. Inputs are the
    encoder's, keyed as in ``evaluate``. ``integer_range``: the inputs are integer counts (event frames) up to
    this value (the training data's largest), compiled with input scale 1 (docs/fixed-point.md §10.1,
    :func:`~bso_deploy.hardware_aware.compile_model`); None: floats in [0, 1]. clipped_inputs counts the input
    values that the simulator's input quantization saturated (larger than the input range)."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    network = HardwareAwareNetwork(model, time_steps, input_shape, integer_range=integer_range).eval()
    fx_net = network.refresh()
    labels, float_pred, integer_pred, fixed_pred = [], [], [], []
    seen = clipped = 0
    for index, (x, y) in enumerate(batches):
        if max_samples is not None and seen >= max_samples:
            break
        if max_samples is not None:
            x, y = x[:max_samples - seen], y[:max_samples - seen]
        x = x.to(device)
        inputs = [encoder(x, t, key_offset + index) for t in range(time_steps)]
        model.reset_state()
        float_pred.append(sum(model.step(x_t) for x_t in inputs).argmax(1).cpu())
        integer_pred.append(network.predict(x, encoder, key_offset + index, time_steps).cpu())
        simulated = run_fixed(fx_net, "sim", torch.stack(inputs).cpu().numpy())
        fixed_pred.append(simulated.predictions)
        clipped += simulated.input_clipped
        labels.append(y.reshape(-1).cpu())
        seen += len(y)
    model.train(was_training)
    truth = torch.cat(labels).numpy()
    fixed = np.concatenate(fixed_pred)
    float_predictions, integer_predictions = torch.cat(float_pred).numpy(), torch.cat(integer_pred).numpy()
    float_fixed = float(np.mean(float_predictions == fixed))
    integer_fixed = float(np.mean(integer_predictions == fixed))
    return {
        "profile": fx_net.profile, "backend": "sim", "samples": int(truth.size), "time_steps": int(time_steps),
        "float_accuracy": float(np.mean(float_predictions == truth)), "fixed_accuracy": float(np.mean(fixed == truth)),
        "integer_forward_accuracy": float(np.mean(integer_predictions == truth)),
        "float_fixed_agreement": float_fixed, "integer_forward_agreement": integer_fixed,
        "prediction_agreement": integer_fixed if hardware_aware else float_fixed,
        "scales": [float(report["scale"]) for report in fx_net.quantization], "clipped_inputs": int(clipped),
        "seconds": time.perf_counter() - start,
    }
