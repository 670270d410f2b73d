"""fixed_point_metrics (bso_deploy/hardware_aware_metrics.py): the float model, the undelayed integer forward
and the compiled network on the simulator, compared on the same batches; the integer forward's predictions
are the simulator's exactly, and its accuracy is what evaluate_hardware reports."""

import numpy as np
import pytest
import torch
from bso_deploy.hardware.backends import run_fixed
from helpers import randomise_batchnorm

from bso_deploy.encoding import make_encoder
from bso_deploy.hardware_aware import HardwareAwareNetwork, evaluate_hardware
from bso_deploy.hardware_aware_metrics import fixed_point_metrics
from bso_deploy.models import build_mlp

KEYS = {"profile", "backend", "samples", "time_steps", "float_accuracy", "fixed_accuracy", "integer_forward_accuracy",
        "float_fixed_agreement", "integer_forward_agreement", "prediction_agreement", "scales", "seconds",
        "clipped_inputs"}


def batches(count: int, size: int, features: int, classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    return [(torch.rand(size, features, generator=generator), torch.randint(0, classes, (size,), generator=generator))
            for _ in range(count)]


@pytest.mark.parametrize("encoder_name", ["direct", "rate"])
def test_metrics_compare_the_three_on_the_same_inputs(encoder_name: str):
    model = randomise_batchnorm(build_mlp((12, 20, 4), binary="hidden", seed=3), 3)
    model.train()
    data, encoder, steps = batches(3, 10, 12, 4), make_encoder(encoder_name, seed=1), 3
    metrics = fixed_point_metrics(model, data, encoder, steps, torch.device("cpu"), (12,), max_samples=25)
    assert set(metrics) == KEYS and model.training  # the train/eval mode is restored
    assert (metrics["profile"], metrics["backend"], metrics["samples"], metrics["time_steps"]) == ("bso", "sim", 25, 3)
    assert metrics["integer_forward_agreement"] == 1.0  # the integer forward is the deployment, exactly
    assert metrics["integer_forward_accuracy"] == metrics["fixed_accuracy"]
    assert metrics["prediction_agreement"] == metrics["float_fixed_agreement"]
    hardware = fixed_point_metrics(model, data, encoder, steps, torch.device("cpu"), (12,), hardware_aware=True)
    assert hardware["samples"] == 30 and hardware["prediction_agreement"] == hardware["integer_forward_agreement"]
    network = HardwareAwareNetwork(model, steps, (12,))
    assert evaluate_hardware(network, data, encoder, steps, torch.device("cpu")) == hardware["integer_forward_accuracy"]
    # the simulator's predictions of the first batch, from the same encoder keys (1 << 40 + batch index)
    x = data[0][0]
    inputs = torch.stack([encoder(x, t, 1 << 40) for t in range(steps)]).numpy()
    predicted = network.predict(x, encoder, 1 << 40, steps).numpy()
    np.testing.assert_array_equal(predicted, run_fixed(network.fx_net, "sim", inputs).predictions)
