"""How far a trained model's deployment agrees with it: float model, integer forward and the simulator.

:func:`fixed_point_metrics` compiles a model as the deployment does (profile bso) and compares, on the same
test batches and encoder keys, the float model, the undelayed integer forward of hardware-aware training
(:class:`~bso_deploy.hardware_aware.HardwareAwareNetwork`) and the compiled network on the NumPy simulator
(backend ``sim``, docs/fixed-point.md §5). Every training run reports these figures (``metrics.json``
``fixed_point``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bso_deploy.hardware.backends import run_fixed
from bso_deploy.hardware.spec import SPEC

from .encoding import Encoder
from .hardware_aware import HardwareAwareNetwork
from .network import SpikingNetwork

__all__ = ["fixed_point_metrics"]


def _first_samples(batches: Iterable[tuple[Tensor, Tensor]], max_samples: int | None) -> list[tuple[Tensor, Tensor]]:
    """The batches holding the first ``max_samples`` samples (all of them for None), the last one cut."""
    kept, seen = [], 0
    for x, y in batches:
        if max_samples is not None and seen >= max_samples:
            break
        count = len(y) if max_samples is None else min(len(y), max_samples - seen)
        kept.append((x[:count], y[:count]))
        seen += count
    return kept


@torch.no_grad()
def fixed_point_metrics(model: SpikingNetwork, batches: Iterable[tuple[Tensor, Tensor]], encoder: Encoder,
                        time_steps: int, device: torch.device, input_shape: tuple[int, ...] | None = None,
                        hardware_aware: bool = False, max_samples: int | None = None,
                        key_offset: int = 1 << 40, integer_inputs: bool = False) -> dict[str, Any]:
    """Deploy ``model`` (compile in profile bso for ``time_steps``) and compare on the test batches:

    float_accuracy (the float model, BatchNorm on running statistics), fixed_accuracy (the compiled network on
    the NumPy simulator, backend ``sim``, T input steps plus the latency flush), integer_forward_accuracy (the
    undelayed integer forward of hardware-aware training), float_fixed_agreement and integer_forward_agreement
    (fractions of equal predictions with the simulator), and prediction_agreement: the latter with
    ``hardware_aware`` (the trained network is the integer one), the former otherwise. Inputs are the
    encoder's, keyed as in ``evaluate``. ``integer_inputs``: integer counts (event frames), compiled with input
    scale 1 and their largest value on these batches as the input range (at most 255; docs/fixed-point.md §10.1,
    :func:`~bso_deploy.hardware_aware.compile_model`); clipped_inputs counts the input values that the
    simulator's input quantization saturated."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    integer_range = None
    if integer_inputs:  # the counts' largest value bounds layer 0's activation (§10.3): read the batches first
        batches = _first_samples(batches, max_samples)
        largest = max((float(x.max()) for x, _ in batches), default=1.0)
        integer_range = int(min(SPEC.input_max, max(1, math.ceil(largest))))
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
