"""Hardware-aware training: the forward pass runs the deployed integer network, gradients take the float path.

:class:`HardwareAwareNetwork` wraps a :class:`~bso_deploy.network.SpikingNetwork` and exposes the same
``reset_state()`` / ``step(x)`` interface the batch trainers use. Whenever the model's parameters changed
(every optimizer step, i.e. every time step of online training), it compiles the model exactly as the
deployment does (``to_nir`` then ``compile_nir(graph, profile="bso", time_steps=T)``, docs/fixed-point.md
§7, §10) and runs that :class:`~bso_deploy.hardware.network.FixedPointNetwork` **without synaptic delays**.
With ``bias_delay = k + 1`` and the latency flush steps, the deployed network is this undelayed one shifted
by k + 1 steps in layer k (docs/fixed-point.md §5.2, §10.4), so its spikes and readout are exactly the
simulator's, and its predictions the deployed predictions.

Per time step t and layer k (integer part; x_0 = clip(round(255 x), 0, 255), x_k = s_{k-1} for k > 0)::

    a   = shift(weight_mant * sum_j w_ij x_j, weight_exp)   (sum pool, flatten, shift_rounding: §4.2 - §4.7)
    u   = wrap_u(trunc(u * (4096 - (du + 1)) / 4096) + (a << 6))            (§3.1, §3.2; du = 4095: u = a << 6)
    v'  = clip(trunc(v * (4096 - dv) / 4096) + u + B, +-(2^23 - 1))         (§3.3, §3.4; B from step 0)
    s   = v' > (vth << 6);  v = v' - s (vth << 6) (subtract) or v' (1 - s) (zero)        (§3.5, §3.6)

The float path is the ordinary online step of the same layer (``I = BN(W s_{k-1} + b)``, OTTT trace gradient,
:mod:`bso_deploy.layers`; BatchNorm with the batch's statistics in training, as ordinary training has it, while
its running statistics, which the compiler folds, stay frozen), and each value the next layer or the loss sees
is the hardware's, passed straight through:

    s_k     = value: s (the integer spikes);   d s_k / d I = sigma'(m),   m = (v' - (vth << 6)) / (64 K_i)
    out[t]  = value: (v[t] - v[t-1]) / (64 K_i) of the readout (so sum_t out[t] = v[T-1] / (64 K_i));
              d out[t] / d I = 1
    trace_k = lambda trace_k + s                                              (OTTT, no gradient)

sigma' is the LIF's sigmoid surrogate (:mod:`bso_deploy.neuron`), m the hardware's distance to its own
threshold in float units, and K_i the compiler's scale of neuron i (integer units of a per unit of float
current; ``quantization[k]["scale"]`` divided by the binary row scale alpha_i, §10.2). The loss and hence
the flips are driven by the hardware values. Predictions are the argmax of the readout's integer v after
the last step, as :func:`bso_deploy.hardware.backends.run_fixed` takes them. During online training the
parameters (and so the compilation) change after every step, inside a sample, as they do for the float
model; the integer state carries over from one step's compilation to the next unchanged.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bso_deploy.export.nir import to_nir
from bso_deploy.export.nir.export import DEFAULT_DT, NIRExportWarning
from bso_deploy.hardware.backends import run_fixed
from bso_deploy.hardware.compiler import compile_nir, float_layers
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.quantize import quantize_inputs
from bso_deploy.hardware.spec import SPEC

from .layers import SYNAPSE_TYPES, synapse_forward
from .network import CURRENT_OPS, LINEAR_SPIKE_OPS, SpikingNetwork
from .neuron import LIF, spike_function

__all__ = ["HardwareAwareNetwork", "IntegerLayer", "IntegerState", "compile_model", "evaluate_hardware",
           "fixed_point_metrics", "integer_layer", "neuron_step_int", "synapse_int"]

PROFILE = "bso"  # the profile whose semantics hardware-aware training uses (docs/fixed-point.md §6.2)


class IntegerLayer(NamedTuple):
    """One compiled layer's constants as tensors, for the undelayed integer forward (docs/fixed-point.md §3, §4).

    weight: effective weights (§4.5) or signs (§4.6) as float64 (exact: every partial sum is an integer below
    2**53, which the compiler checks, §1.1), dense (n_out, n_in), conv (C_out, C_in, kh, kw). vth_scaled =
    vth << 6, bias = bias_mant shifted by bias_exp, unit = 64 K_i (v units per unit of float v), all with the
    layer's output shape."""

    kind: str
    pool: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    weight: Tensor
    weight_mant: int
    weight_exp: int
    nearest: bool  # shift_rounding "nearest": a negative weight_exp rounds to nearest, halves up (§4.7)
    u_factor: int
    v_factor: int
    vth_scaled: Tensor
    bias: Tensor
    subtract: bool
    spiking: bool
    unit: Tensor


class IntegerState(NamedTuple):
    """u and v of one layer, int64 (batch, *shape), after reset."""

    u: Tensor
    v: Tensor


def _shift(x: Tensor, exponent: Tensor | int) -> Tensor:
    """x << e for e >= 0, arithmetic x >> -e (floor) for e < 0 (docs/fixed-point.md §1.2)."""
    exponent = torch.as_tensor(exponent, dtype=torch.int64, device=x.device)
    return torch.where(exponent >= 0, x << exponent.clamp(min=0), x >> (-exponent).clamp(min=0))


def _effective_weight(weight: np.ndarray) -> np.ndarray:
    """Lava Dense's sign-mode clip and mixed-mode truncation of 8-bit weights (docs/fixed-point.md §4.5)."""
    if weight.size == 0 or weight.min() >= 0:
        return np.clip(weight, 0, SPEC.weight_max)
    if weight.max() <= 0:
        return np.clip(weight, -SPEC.weight_max, 0)
    dropped = SPEC.mixed_dropped_bits
    return (np.clip(weight, SPEC.weight_min, SPEC.weight_max) >> dropped) << dropped


def integer_layer(layer: FixedPointLayer, scale: np.ndarray, device: torch.device) -> IntegerLayer:
    """Tensors of ``layer``; ``scale`` is K_i per neuron (output shape). ValueError for a layer whose bias does
    not start with its first input (profile loihi), since the undelayed forward would then differ (§5.2), and
    for a recurrent layer (§4.9), which this forward does not run."""
    if layer.recurrent:
        raise ValueError(f"layer {layer.name!r}: hardware-aware training has no recurrent layers (docs/fixed-point.md "
                         "§4.9); train the model without recurrent connections")
    weight = np.asarray(layer.weight, dtype=np.int64)
    weight = weight if layer.binary else _effective_weight(weight)

    def tensor(values: Any, dtype: torch.dtype = torch.int64) -> Tensor:
        return torch.tensor(np.array(values), dtype=dtype, device=device)

    bias = _shift(tensor(layer.bias_mant), tensor(layer.bias_exp))
    return IntegerLayer(
        kind=layer.kind, pool=layer.pool, stride=layer.stride, padding=layer.padding,
        weight=tensor(weight, torch.float64), weight_mant=layer.weight_mant, weight_exp=layer.weight_exp,
        nearest=layer.shift_rounding == "nearest",
        u_factor=SPEC.decay_unity - (layer.du + 1), v_factor=SPEC.decay_unity - layer.dv,
        vth_scaled=tensor(layer.vth) << SPEC.state_shift, bias=bias, subtract=layer.reset == "subtract",
        spiking=layer.spiking, unit=tensor(np.broadcast_to(scale, layer.output_shape) * (1 << SPEC.state_shift),
                                           torch.float64))


def synapse_int(x: Tensor, layer: IntegerLayer) -> Tensor:
    """a = shift(weight_mant * sum_j w_ij x_j, weight_exp) for integer x (batch, *input_shape): sum pool,
    flatten, dense or conv connection, magnitude and exponent (docs/fixed-point.md §4.2 - §4.7), no delay."""
    values = x.to(torch.float64)
    if layer.pool != (1, 1):
        values = F.avg_pool2d(values, layer.pool, stride=layer.pool, divisor_override=1)  # a sum pool (§4.2)
    if layer.kind == "dense":
        acc = torch.flatten(values, start_dim=1) @ layer.weight.t()
    else:
        acc = F.conv2d(values, layer.weight, stride=layer.stride, padding=layer.padding)
    acc = acc.to(torch.int64) * layer.weight_mant
    if layer.nearest and layer.weight_exp < 0:  # (acc + 2**(k-1)) >> k (§4.7)
        acc = acc + (1 << (-layer.weight_exp - 1))
    return _shift(acc, layer.weight_exp)


def _trunc_decay(x: Tensor, factor: int) -> Tensor:
    """trunc(x * factor / 4096), toward zero (docs/fixed-point.md §1.2)."""
    product = x * factor
    return torch.sign(product) * (product.abs() >> SPEC.decay_bits)


def neuron_step_int(a: Tensor, state: IntegerState, layer: IntegerLayer) -> tuple[Tensor, Tensor, IntegerState]:
    """One LIF update with the bias on (docs/fixed-point.md §3.1 - §3.7; equations in the module docstring).
    Returns (spikes bool, v before reset, new state); nothing is mutated."""
    u = _trunc_decay(state.u, layer.u_factor) + (a << SPEC.state_shift)
    u = torch.remainder(u - SPEC.u_min, SPEC.u_modulus) + SPEC.u_min  # wrap into (-2^23, 2^23] (§3.2)
    v = (_trunc_decay(state.v, layer.v_factor) + u + layer.bias).clamp(SPEC.v_min, SPEC.v_max)
    if not layer.spiking:
        return torch.zeros_like(v, dtype=torch.bool), v, IntegerState(u, v)
    fired = v > layer.vth_scaled
    after = v - layer.vth_scaled if layer.subtract else torch.zeros_like(v)
    return fired, v, IntegerState(u, torch.where(fired, after, v))


def _normalize(batchnorm: nn.Module, current: Tensor, batch_statistics: bool) -> Tensor:
    """The float path's BatchNorm: batch statistics without updating the running ones (training), else the
    running statistics. The hardware folds the running statistics (§7.2); the float path only supplies the
    gradients, and with batch statistics they keep the structure the binary optimizer's state was built on
    (normalizing it with the running statistics instead made T-BSO collapse on digits, docs/training.md)."""
    if not batch_statistics or current.shape[0] < 2:
        return batchnorm(current)  # kept in eval mode by HardwareAwareNetwork.train()
    return F.batch_norm(current, None, None, batchnorm.weight, batchnorm.bias, training=True, eps=batchnorm.eps)


class _StraightThrough(torch.autograd.Function):
    """Forward: ``value`` exactly; backward: the gradient goes to ``path`` unchanged."""

    @staticmethod
    def forward(ctx, value: Tensor, path: Tensor) -> Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        return None, grad_output


def compile_model(model: SpikingNetwork, time_steps: int, input_shape: tuple[int, ...] | None = None,
                  dt: float = DEFAULT_DT) -> tuple[FixedPointNetwork, list[np.ndarray]]:
    """The deployment of ``model`` (``to_nir`` + ``compile_nir`` in profile bso for ``time_steps``) and K_i per
    neuron of every layer (output shape): ``quantization[k]["scale"]`` divided by the binary rows' alpha_i."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)  # the subtractive reset: known, carried in metadata
        graph = to_nir(model, dt=dt, input_shape=input_shape)
    fx_net = compile_nir(graph, profile=PROFILE, time_steps=time_steps)
    scales = []
    for float_layer, report in zip(float_layers(graph, PROFILE), fx_net.quantization, strict=True):
        scale = np.full(float_layer.output_shape, float(report["scale"]))
        if float_layer.binary:
            rows = (-1,) + (1,) * (len(float_layer.output_shape) - 1)
            scale = scale / np.asarray(float_layer.alpha, dtype=np.float64).reshape(rows)
        scales.append(scale)
    return fx_net, scales


@dataclass(frozen=True)
class _Segment:
    """The model's modules of one compiled layer: linear pre-ops (Flatten, AvgPool2d), synapse, BatchNorm,
    LIF (None for the readout)."""

    pre_ops: tuple[nn.Module, ...]
    synapse: nn.Module
    batchnorm: nn.Module | None
    lif: LIF | None


def _segments(model: SpikingNetwork) -> list[_Segment]:
    """Group the layers as the compiler does: ``([Flatten|AvgPool2d]* synapse [BatchNorm] LIF)* [Flatten|
    AvgPool2d]* synapse [BatchNorm]`` (the last synapse is the non-spiking readout, docs/fixed-point.md §10.2)."""
    segments, pre_ops, synapse, batchnorm = [], [], None, None
    for index, layer in enumerate(model.layers):
        if isinstance(layer, nn.Identity):
            continue
        if isinstance(layer, SYNAPSE_TYPES) and synapse is None:
            synapse = layer
        elif isinstance(layer, CURRENT_OPS) and synapse is not None and batchnorm is None:
            batchnorm = layer
        elif isinstance(layer, LIF) and synapse is not None:
            segments.append(_Segment(tuple(pre_ops), synapse, batchnorm, layer))
            pre_ops, synapse, batchnorm = [], None, None
        elif isinstance(layer, LINEAR_SPIKE_OPS) and synapse is None:
            pre_ops.append(layer)
        else:
            raise ValueError(f"hardware-aware training cannot map layer {index} ({type(layer).__name__}) there; it "
                             "needs ([Flatten|AvgPool2d]* synapse [BatchNorm] LIF)* ... synapse [BatchNorm]")
    if synapse is None:
        raise ValueError("hardware-aware training needs a network that ends in a synapse (the readout), as "
                         "build_mlp and build_vgg build them")
    segments.append(_Segment(tuple(pre_ops), synapse, batchnorm, None))
    return segments


class HardwareAwareNetwork(nn.Module):
    """``model`` whose forward runs its own deployment (module docstring). Same ``reset_state``/``step`` as the
    model; ``train()`` keeps BatchNorm in eval mode, so its running statistics (which the compiler folds, §7.2)
    stay frozen; the float path normalizes with batch statistics while training (:func:`_normalize`).

    Recompiles when a parameter or buffer changed in place since the last compilation (torch's version counters,
    which every optimizer update bumps); ``compilations`` counts them."""

    def __init__(self, model: SpikingNetwork, time_steps: int, input_shape: tuple[int, ...] | None = None,
                 dt: float = DEFAULT_DT) -> None:
        super().__init__()
        if not model.online:
            raise ValueError("hardware-aware training needs an online model (methods tbso, bso, bop)")
        self.model = model
        self.time_steps, self.input_shape, self.dt = int(time_steps), input_shape, float(dt)
        self.segments = _segments(model)
        self.fx_net: FixedPointNetwork | None = None
        self.compilations = 0
        self._layers: list[IntegerLayer] = []
        self._fingerprint: tuple | None = None
        self._state: list[tuple[IntegerState, Tensor] | None] = []
        self.readout_v: Tensor | None = None  # the readout's integer v after the last step (predictions)
        self.spikes: list[Tensor] = []  # each spiking layer's integer spikes (bool) of the last step

    def train(self, mode: bool = True) -> HardwareAwareNetwork:
        super().train(mode)
        for module in self.model.modules():
            if isinstance(module, CURRENT_OPS):
                module.eval()
        return self

    def _current_fingerprint(self) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in (*self.model.parameters(), *self.model.buffers()))

    def refresh(self) -> FixedPointNetwork:
        """Compile the model as it is now (done by :meth:`step` when the parameters changed)."""
        fingerprint = self._current_fingerprint()
        if fingerprint == self._fingerprint and self.fx_net is not None:
            return self.fx_net
        fx_net, scales = compile_model(self.model, self.time_steps, self.input_shape, self.dt)
        if len(fx_net.layers) != len(self.segments):
            raise ValueError(f"the compiled network has {len(fx_net.layers)} layers, the model {len(self.segments)} "
                             "synapse stages; cannot pair them")
        for index, layer in enumerate(fx_net.layers):
            if layer.bias_delay != index + 1:
                raise ValueError(f"layer {layer.name!r} starts its bias at step {layer.bias_delay}, not with its "
                                 f"first input ({index + 1}); the undelayed forward needs profile bso (§5.2)")
        device = next(self.model.parameters()).device
        self._layers = [integer_layer(layer, scale, device) for layer, scale in zip(fx_net.layers, scales)]
        self.fx_net, self._fingerprint = fx_net, fingerprint
        self.compilations += 1
        return fx_net

    def reset_state(self) -> None:
        self._state = [None] * len(self.segments)
        self.readout_v = None
        self.spikes = []

    def quantize(self, x: Tensor) -> Tensor:
        """Network input as the deployment quantizes it (``quantize_inputs``, docs/fixed-point.md §10.1)."""
        assert self.fx_net is not None  # refresh() ran
        values = quantize_inputs(self.fx_net, x.detach().cpu().numpy())
        return torch.as_tensor(values, dtype=torch.int64, device=x.device)

    def step(self, x: Tensor) -> Tensor:
        """One time step: x (batch, *input_shape) float input; returns the readout's per-step value in float
        units (the hardware's, with the float path's gradient), (batch, num_outputs)."""
        self.refresh()
        if len(self._state) != len(self.segments):
            self.reset_state()
        hardware_input = self.quantize(x)
        spikes, trace = x, x
        self.spikes = []
        output = x
        for index, (segment, layer) in enumerate(zip(self.segments, self._layers)):
            for op in segment.pre_ops:
                spikes, trace = op(spikes), op(trace)
            current = synapse_forward(segment.synapse, spikes, trace)
            if segment.batchnorm is not None:
                current = _normalize(segment.batchnorm, current, self.training and torch.is_grad_enabled())
            a = synapse_int(hardware_input, layer)
            previous = self._state[index]
            if previous is None:
                zeros = torch.zeros_like(a)
                previous = (IntegerState(zeros, zeros), torch.zeros(a.shape, dtype=current.dtype, device=a.device))
            state, previous_trace = previous
            fired, v_before_reset, new_state = neuron_step_int(a, state, layer)
            if segment.lif is not None:
                params = segment.lif.params
                margin = ((v_before_reset - layer.vth_scaled).to(torch.float64) / layer.unit).to(current.dtype)
                surrogate = spike_function(current + (margin - current).detach(), params.alpha)
                hardware_spikes = fired.to(current.dtype)
                spikes = _StraightThrough.apply(hardware_spikes, surrogate)
                trace = params.decay * previous_trace + hardware_spikes
                self._state[index] = (new_state, trace)
                hardware_input = fired.to(torch.int64)
                self.spikes.append(fired)
            else:
                value = ((new_state.v - state.v).to(torch.float64) / layer.unit).to(current.dtype)
                output = _StraightThrough.apply(value, current)
                self._state[index] = (new_state, previous_trace)
                self.readout_v = new_state.v
        return output


def _predict(network: HardwareAwareNetwork, x: Tensor, encoder, key: int, time_steps: int) -> Tensor:
    network.reset_state()
    for t in range(time_steps):
        network.step(encoder(x, t, key))
    assert network.readout_v is not None
    return network.readout_v.reshape(x.shape[0], -1).argmax(1)


@torch.no_grad()
def evaluate_hardware(network: HardwareAwareNetwork, batches: Iterable[tuple[Tensor, Tensor]], encoder,
                      time_steps: int, device: torch.device, key_offset: int = 1 << 40) -> float:
    """Accuracy of the integer forward (argmax of the readout's integer v after T steps), with the same batches
    and encoder keys as :func:`bso_deploy.training.evaluate`; restores the train/eval mode."""
    was_training = network.training
    network.eval()
    correct = total = 0
    for index, (x, y) in enumerate(batches):
        x, y = x.to(device), y.to(device)
        correct += int((_predict(network, x, encoder, key_offset + index, time_steps) == y).sum())
        total += int(y.numel())
    network.train(was_training)
    return correct / max(total, 1)


@torch.no_grad()
def fixed_point_metrics(model: SpikingNetwork, batches: Iterable[tuple[Tensor, Tensor]], encoder, time_steps: int,
                        device: torch.device, input_shape: tuple[int, ...] | None = None,
                        hardware_aware: bool = False, max_samples: int | None = None,
                        key_offset: int = 1 << 40) -> dict[str, Any]:
    """Deploy ``model`` (compile in profile bso for ``time_steps``) and compare on the test batches:

    float_accuracy (the float model, BatchNorm on running statistics), fixed_accuracy (the compiled network on
    the NumPy simulator, backend ``sim``, T input steps plus the latency flush), integer_forward_accuracy (this
    module's undelayed integer forward), float_fixed_agreement and integer_forward_agreement (fractions of equal
    predictions with the simulator), and prediction_agreement: the latter with ``hardware_aware`` (the trained
    network is the integer one), the former otherwise. Inputs are the encoder's, keyed as in ``evaluate``."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    network = HardwareAwareNetwork(model, time_steps, input_shape).eval()
    fx_net = network.refresh()
    labels, float_pred, integer_pred, fixed_pred = [], [], [], []
    seen = 0
    for index, (x, y) in enumerate(batches):
        if max_samples is not None and seen >= max_samples:
            break
        if max_samples is not None:
            x, y = x[:max_samples - seen], y[:max_samples - seen]
        x = x.to(device)
        inputs = [encoder(x, t, key_offset + index) for t in range(time_steps)]
        model.reset_state()
        float_pred.append(sum(model.step(x_t) for x_t in inputs).argmax(1).cpu())
        integer_pred.append(_predict(network, x, encoder, key_offset + index, time_steps).cpu())
        fixed_pred.append(run_fixed(fx_net, "sim", torch.stack(inputs).cpu().numpy()).predictions)
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
        "scales": [float(report["scale"]) for report in fx_net.quantization],
        "seconds": time.perf_counter() - start,
    }
