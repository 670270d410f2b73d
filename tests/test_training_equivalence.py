"""The optimized training loop against the plain one it replaced, bit for bit.

Each case trains a few seeded batches of a small MLP or CNN twice: with bso_deploy's loop
(``train_online_batch`` / ``train_bptt_batch``, ``make_optimizers``) and with the reference loop below, which
is the code before the loop was optimized, written out plainly: its LIF step and surrogate spike, its network
step, its loss, and its BSO / T-BSO / Bop updates (out-of-place, ``torch.where``, the per-entry finiteness
check), with torch's own SGD and Adam for the full-precision and latent parameters. Every parameter, buffer,
momentum, second moment and full-precision optimizer buffer must hold the same bits after every batch, and
every batch the same loss, correct count and flips per binary layer.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bso_deploy.config import TrainConfig
from bso_deploy.encoding import make_encoder
from bso_deploy.layers import PER_STEP_BATCHNORM_TYPES, SYNAPSE_TYPES, split_parameters, synapse_forward
from bso_deploy.network import LINEAR_SPIKE_OPS
from bso_deploy.neuron import LIF
from bso_deploy.ste import latent_parameters
from bso_deploy.training import build_network, make_optimizers, train_bptt_batch, train_online_batch

CLASSES, BATCH, BATCHES, TIME_STEPS = 5, 16, 3, 3
MLP_INPUT, CNN_INPUT = (12,), (1, 8, 8)


class ReferenceSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        sig = torch.sigmoid(ctx.alpha * x)
        return grad_output * ctx.alpha * sig * (1.0 - sig), None


def reference_lif(current, state, params, detach_state):
    if state is None or state[0].shape != current.shape:
        state = (torch.zeros_like(current.detach()), torch.zeros_like(current.detach()))
    previous_v = state[0].detach() if detach_state else state[0]
    v = params.decay * previous_v + current
    spikes = ReferenceSpike.apply(v - params.threshold, params.alpha)
    fired = spikes.detach()
    v_after = v - params.threshold * fired if params.reset == "subtract" else v * (1.0 - fired)
    trace = params.decay * state[1] + fired
    return spikes, (v_after.detach() if detach_state else v_after, trace)


def reference_step(model, x, states, online):
    trace = x if online else None
    for index, layer in enumerate(model.layers):
        if isinstance(layer, SYNAPSE_TYPES):
            x = synapse_forward(layer, x, trace)
            trace = None
        elif isinstance(layer, LIF):
            x, states[index] = reference_lif(x, states.get(index), layer.params, online)
            trace = states[index][1] if online else None
        elif isinstance(layer, LINEAR_SPIKE_OPS):
            x = layer(x)
            trace = layer(trace) if trace is not None else None
        else:
            x = layer(x)
    return x


def reference_loss(output, target, config):
    ce = F.cross_entropy(output, target)
    mse = F.mse_loss(output, F.one_hot(target, CLASSES).to(output.dtype))
    return ((1.0 - config.mse_weight) * ce + config.mse_weight * mse) / config.time_steps


def reference_update(config, weight, grad, state, t):
    """The out-of-place updates: (new_weight, flipped), state updated."""
    threshold = config.flip_threshold
    if config.method == "bop":
        state["momentum"] = state["momentum"] + config.bop_gamma * (grad - state["momentum"])
        flipped = (weight * state["momentum"] - threshold) > 0
        return torch.where(flipped, -weight, weight), flipped
    beta1 = 1.0 - config.momentum
    state["momentum"] = (1 - beta1) * state["momentum"] + beta1 * grad
    if config.method == "bso":
        flipped = (weight * state["momentum"] - threshold) > 0
        state["momentum"] = state["momentum"].masked_fill(flipped, 0.0)
        return torch.where(flipped, -weight, weight), flipped
    beta2, second_moment = 1.0 - config.variance_decay, state["second_moment"]
    new_v = (1 - beta2) * second_moment[t] + torch.mean(beta2 * torch.mul(grad, grad))
    flipped = (weight * state["momentum"] / (torch.sqrt(new_v) + 1e-10) - threshold) > 0
    second_moment[t] = new_v
    return torch.where(flipped, -weight, weight), flipped


class ReferenceTrainer:
    """The plain loop: zero_grad, step, loss, isfinite, backward, SGD, then the binary updates."""

    def __init__(self, config, model):
        self.config, self.model = config, model
        if config.online:
            self.binary, full_precision = split_parameters(model)
        else:
            self.binary = latent_parameters(model)
            latent_ids = {id(p) for p in self.binary}
            full_precision = [p for p in model.parameters() if id(p) not in latent_ids]
            self.latent_adam = torch.optim.Adam(self.binary, lr=config.ste_lr)
        self.sgd = torch.optim.SGD(full_precision, lr=config.lr, momentum=config.fp_momentum,
                                   weight_decay=config.weight_decay)
        self.state = {id(p): {"momentum": torch.zeros_like(p),
                              "second_moment": torch.zeros(config.time_steps)} for p in self.binary}

    def zero_grad(self):
        self.sgd.zero_grad(set_to_none=True)
        for param in self.binary:
            param.grad = None

    @torch.no_grad()
    def binary_step(self, t):
        for param in self.binary:
            assert int((~torch.isfinite(param.grad)).sum()) == 0
        flips = []
        for param in self.binary:
            new_weight, flipped = reference_update(self.config, param, param.grad, self.state[id(param)], t)
            param.copy_(new_weight)
            flips.append(int(flipped.sum()))
        return flips

    def online_batch(self, x, y, encoder, key):
        self.model.reset_state()
        states, total_loss, flips, output_sum = {}, 0.0, None, None
        for t in range(self.config.time_steps):
            self.zero_grad()
            output = reference_step(self.model, encoder(x, t, key), states, online=True)
            loss = reference_loss(output, y, self.config)
            assert torch.isfinite(loss)
            loss.backward()
            self.sgd.step()
            step_flips = self.binary_step(t)
            flips = step_flips if flips is None else [a + b for a, b in zip(flips, step_flips)]
            total_loss += loss.item()
            output_sum = output.detach() if output_sum is None else output_sum + output.detach()
        return total_loss, int((output_sum.argmax(1) == y).sum()), flips

    def bptt_batch(self, x, y, encoder, key):
        self.model.reset_state()
        self.zero_grad()
        states = {}
        outputs = [reference_step(self.model, encoder(x, t, key), states, online=False)
                   for t in range(self.config.time_steps)]
        loss = sum(reference_loss(output, y, self.config) for output in outputs)
        loss.backward()
        signs = [p.detach() >= 0 for p in self.binary]
        self.sgd.step()
        self.latent_adam.step()
        flips = [int(((p.detach() >= 0) != sign).sum()) for p, sign in zip(self.binary, signs)]
        correct = int((torch.stack([o.detach() for o in outputs]).sum(0).argmax(1) == y).sum())
        return float(loss.item()), correct, flips


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes (so -0.0 differs from 0.0 and every NaN payload counts)."""
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def assert_same_bits(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    assert torch.equal(bits(actual), bits(expected)), f"{what} differs"


def assert_same_training_state(config, model, optimizers, reference: ReferenceTrainer, batch: int) -> None:
    expected = reference.model.state_dict()
    for name, tensor in model.state_dict().items():
        assert_same_bits(tensor, expected[name], f"batch {batch}: {name}")
    binary = [p for g in optimizers.binary.param_groups for p in g["params"]]
    for index, (param, reference_param) in enumerate(zip(binary, reference.binary, strict=True)):
        assert_same_bits(param, reference_param, f"batch {batch}: binary parameter {index}")
        if config.online:
            state, reference_state = optimizers.binary.state[param], reference.state[id(reference_param)]
            for key in state:
                assert_same_bits(state[key], reference_state[key], f"batch {batch}: {key} of binary {index}")
        else:
            for key, value in optimizers.binary.state[param].items():
                assert_same_bits(value, reference.latent_adam.state[reference_param][key], f"batch {batch}: {key}")
    full = [p for g in optimizers.full_precision.param_groups for p in g["params"]]
    reference_full = [p for g in reference.sgd.param_groups for p in g["params"]]
    for index, (param, reference_param) in enumerate(zip(full, reference_full, strict=True)):
        buffer = optimizers.full_precision.state[param].get("momentum_buffer")
        if buffer is not None:
            assert_same_bits(buffer, reference.sgd.state[reference_param]["momentum_buffer"],
                             f"batch {batch}: SGD momentum of parameter {index}")


CASES = [
    # (model, method, extra config fields)
    ("mlp", "tbso", {}),
    ("mlp", "bso", {}),
    ("mlp", "bop", {"bop_gamma": 0.05}),
    ("mlp", "tbso", {"batchnorm": "per-step", "reset": "zero", "encoder": "rate"}),
    ("mlp", "bso", {"batchnorm": "running", "binary": "all"}),
    ("mlp", "bptt-ste", {"ste_lr": 0.05}),
    ("cnn", "tbso", {}),
    ("cnn", "bso", {"batchnorm": "per-step", "reset": "zero"}),
    ("cnn", "bop", {"bop_gamma": 0.05, "encoder": "rate"}),
    ("cnn", "bptt-ste", {"batchnorm": "running", "ste_lr": 0.05}),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("model_name", "method", "fields"), CASES)
def test_training_is_bit_identical_to_the_plain_loop(model_name, method, fields, seed):
    config = TrainConfig(dataset="digits", model=model_name, method=method, time_steps=TIME_STEPS, batch_size=BATCH,
                         seed=seed, hidden=(16, 12), cnn="4C3-P2-6C3", momentum=0.9, **fields)
    shape = MLP_INPUT if model_name == "mlp" else CNN_INPUT
    model, reference_model = (build_network(config, shape, CLASSES) for _ in range(2))
    for module in (model, reference_model):
        module.train()
    optimizers = make_optimizers(model, config)
    reference = ReferenceTrainer(config, reference_model)
    encoder = make_encoder(config.encoder, seed=seed)
    generator = torch.Generator().manual_seed(100 + seed)
    trainer = train_online_batch if config.online else train_bptt_batch
    total_flips = 0
    for batch in range(BATCHES):
        x = torch.rand((BATCH, *shape), generator=generator)
        y = torch.randint(0, CLASSES, (BATCH,), generator=generator)
        result = trainer(model, x, y, encoder, batch, optimizers, config.time_steps, CLASSES, config.mse_weight)
        run = reference.online_batch if config.online else reference.bptt_batch
        loss, correct, flips = run(x, y, encoder, batch)
        assert (result.loss, result.correct, result.flips) == (loss, correct, flips), f"batch {batch}"
        assert_same_training_state(config, model, optimizers, reference, batch)
        total_flips += sum(flips)
    assert total_flips > 0, "no weight flipped: the case does not exercise the flip path"


def test_the_per_step_batchnorm_reference_resets_its_step_count():
    # The reference loop relies on model.reset_state() restarting per-step BatchNorm's time-step count.
    config = TrainConfig(dataset="digits", batchnorm="per-step", hidden=(8, 8), time_steps=2)
    model = build_network(config, MLP_INPUT, CLASSES)
    norms = [m for m in model.modules() if isinstance(m, PER_STEP_BATCHNORM_TYPES)]
    model.step(torch.rand(4, *MLP_INPUT))
    assert norms and all(m.time_step == 1 for m in norms)
    model.reset_state()
    assert all(m.time_step == 0 for m in norms)
