"""The BPTT-STE baseline: latent weights, clipped straight-through gradient, BPTT memory."""

import torch

from bso_deploy.checkpoint import model_payload
from bso_deploy.models import build_mlp
from bso_deploy.ste import LatentAdam, attach_latent_weights, latent_parameters


def test_latent_weights_keep_signs_and_forward_is_binary():
    model = build_mlp((6, 8, 8, 3), seed=4)
    signs = model.layers[2].weight.detach().clone()
    latents = attach_latent_weights(model)
    assert len(latents) == 1 and latent_parameters(model)[0] is latents[0]
    assert torch.equal(model.layers[2].weight, signs)
    assert torch.equal(latents[0].sign(), signs)


def test_clipped_straight_through_gradient():
    model = build_mlp((2, 3, 3, 2), seed=0)
    (latent,) = attach_latent_weights(model)
    with torch.no_grad():
        latent.copy_(torch.tensor([[0.5, -2.0, 0.0], [1.0, -0.25, 3.0], [-1.0, 0.1, -0.1]]))
    layer = model.layers[2]
    x = torch.ones(1, 3)
    (x @ layer.weight.t()).sum().backward()
    inside = (latent.detach().abs() <= 1).float()
    assert torch.equal(latent.grad, torch.ones(3, 3) * inside)
    assert torch.equal(layer.weight, torch.tensor([[1.0, -1, 1], [1, -1, 1], [-1, 1, -1]]))


def test_latent_adam_counts_sign_flips():
    latent = torch.nn.Parameter(torch.tensor([0.0005, -0.0005, 0.5]))
    optimizer = LatentAdam([latent], lr=1e-3)
    latent.grad = torch.tensor([1.0, -1.0, 1.0])
    optimizer.step()
    assert optimizer.last_flips == [2]


def test_checkpoint_stores_latent_weights_as_full_precision():
    model = build_mlp((6, 8, 8, 3))
    attach_latent_weights(model)
    payload = model_payload(model)
    assert payload["binary"] == {}
    assert payload["full_precision"]["layers.2.parametrizations.weight.original"].dtype == torch.float32
