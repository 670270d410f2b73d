"""Hardware-aware training: the forward pass runs the deployed integer network, gradients take the float path.

:class:`HardwareAwareNetwork` wraps a :class:`~bso_deploy.network.SpikingNetwork` and exposes the same
``reset_state()`` / ``step(x)`` interface the batch trainers use. Whenever the model's parameters changed
(every optimizer step, i.e. every time step of online training), it compiles the model exactly as the
deployment does (``to_nir`` then ``compile_nir(graph, profile="bso", time_steps=T)``, docs/fixed-point.md
§7, §10) and runs that :class:`~bso_deploy.hardware.network.FixedPointNetwork` **without synaptic delays**.
With ``bias_delay = k + 1`` and the latency flush steps, the deployed network is this undelayed one shifted
by k + 1 steps in layer k (docs/fixed-point.md §5.2, §10.4), so its spikes and readout are exactly the
simulator's, and its predictions the deployed predictions.

Per time step t and layer k the integer part is the torch reference's own arithmetic, called, not copied
(:mod:`bso_deploy.hardware.torch_kernels`; x_0 = clip(round(255 x), 0, 255), x_k = s_{k-1} for k > 0): the
synaptic current a = :func:`~bso_deploy.hardware.torch_kernels.synaptic_current` of x_k (§4.2 - §4.7),
delivered at once, then one :func:`~bso_deploy.hardware.torch_kernels.lif_step` (§3.1 - §3.6, its docstring
has the equations) with the bias on from step 0. It gives the spikes s, the clipped v' before reset and the
new state (u, v).

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
model; the integer state carries over from one step's compilation to the next unchanged. How far the float
model, this forward and the simulator agree on test data: :mod:`bso_deploy.hardware_aware_metrics`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bso_deploy.export.nir import to_nir
from bso_deploy.export.nir.export import DEFAULT_DT, NIRExportWarning
from bso_deploy.hardware.compiler import compile_nir, float_layers
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.quantize import quantize_inputs
from bso_deploy.hardware.spec import SPEC
from bso_deploy.hardware.torch_kernels import (
    LIFState,
    NeuronConstants,
    SynapseConstants,
    initial_state,
    lif_step,
    neuron_constants,
    synapse_constants,
    synaptic_current,
)

from .encoding import Encoder
from .layers import SYNAPSE_TYPES, synapse_forward
from .network import CURRENT_OPS, LINEAR_SPIKE_OPS, SpikingNetwork
from .neuron import LIF, spike_function

__all__ = ["PROFILE", "HardwareAwareNetwork", "IntegerLayer", "compile_model", "evaluate_hardware", "integer_layer"]

PROFILE = "bso"  # the profile whose semantics hardware-aware training uses (docs/fixed-point.md §6.2)


class IntegerLayer(NamedTuple):
    """One compiled layer for the undelayed integer forward: its synapse and neuron constants (the torch
    reference's, :mod:`bso_deploy.hardware.torch_kernels`) and unit = 64 K_i (v units per unit of float v,
    the layer's output shape, float64), which maps the hardware's values to the float path's."""

    synapse: SynapseConstants
    neuron: NeuronConstants
    unit: Tensor


def integer_layer(layer: FixedPointLayer, scale: np.ndarray, device: torch.device,
                  input_max: int = SPEC.input_max) -> IntegerLayer:
    """The constants of ``layer`` on ``device``; ``scale`` is K_i per neuron (output shape), ``input_max``
    bounds the layer's input values (255 for the network input, 1 for spikes; the larger is always safe).
    ValueError for a recurrent layer (§4.9), which this forward does not run."""
    if layer.recurrent:
        raise ValueError(f"layer {layer.name!r}: hardware-aware training has no recurrent layers (docs/fixed-point.md "
                         "§4.9); train the model without recurrent connections")
    unit = np.broadcast_to(scale, layer.output_shape) * (1 << SPEC.state_shift)
    return IntegerLayer(synapse=synapse_constants(layer, input_max, device), neuron=neuron_constants(layer, device),
                        unit=torch.tensor(np.array(unit), dtype=torch.float64, device=device))


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
                  dt: float = DEFAULT_DT,
                  integer_range: int | None = None) -> tuple[FixedPointNetwork, list[np.ndarray]]:
    """The deployment of ``model`` (``to_nir`` + ``compile_nir`` in profile bso for ``time_steps``) and K_i per
    neuron of every layer (output shape): ``quantization[k]["scale"]`` divided by the binary rows' alpha_i.
    ``integer_range``: the inputs are integer counts in [0, integer_range] (event frames), compiled with input
    scale 1 and input_max = min(integer_range, 255), so they reach layer 0 unchanged (docs/fixed-point.md §10.1);
    None: floats in [0, 1]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)  # the subtractive reset: known, carried in metadata
        graph = to_nir(model, dt=dt, input_shape=input_shape)
    integer = integer_range is not None
    fx_net = compile_nir(graph, profile=PROFILE, time_steps=time_steps, input_scale=1.0 if integer else None,
                         input_range=float(max(1, integer_range)) if integer else None)
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
                 dt: float = DEFAULT_DT, integer_range: int | None = None) -> None:
        super().__init__()
        if not model.online:
            raise ValueError("hardware-aware training needs an online model (methods tbso, bso, bop)")
        self.model = model
        self.time_steps, self.input_shape, self.dt = int(time_steps), input_shape, float(dt)
        self.integer_range = integer_range  # event counts: input scale 1 (compile_model)
        self.segments = _segments(model)
        self.fx_net: FixedPointNetwork | None = None
        self.compilations = 0
        self._layers: list[IntegerLayer] = []
        self._fingerprint: tuple | None = None
        self._state: list[tuple[LIFState, Tensor] | None] = []
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
        fx_net, scales = compile_model(self.model, self.time_steps, self.input_shape, self.dt, self.integer_range)
        if len(fx_net.layers) != len(self.segments):
            raise ValueError(f"the compiled network has {len(fx_net.layers)} layers, the model {len(self.segments)} "
                             "synapse stages; cannot pair them")
        for index, layer in enumerate(fx_net.layers):
            if layer.bias_delay != index + 1:
                raise ValueError(f"layer {layer.name!r} starts its bias at step {layer.bias_delay}, not with its "
                                 f"first input ({index + 1}); the undelayed forward needs profile bso (§5.2)")
        device = next(self.model.parameters()).device
        bounds = [SPEC.input_max] + [1] * (len(fx_net.layers) - 1)  # the quantized input (§5.3), then spikes
        self._layers = [integer_layer(layer, scale, device, bound)
                        for layer, scale, bound in zip(fx_net.layers, scales, bounds)]
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
            a = synaptic_current(hardware_input, layer.synapse)  # delivered at once: no delay (module docstring)
            previous = self._state[index]
            if previous is None:
                zeros = torch.zeros(a.shape, dtype=current.dtype, device=a.device)
                previous = (initial_state(layer.neuron, a.shape[0]), zeros)
            state, previous_trace = previous
            integer = lif_step(a, state, layer.neuron, bias_on=True)  # the bias starts with the first input
            fired, new_state = integer.spikes, integer.state
            if segment.lif is not None:
                params = segment.lif.params
                distance = (integer.v_before_reset - layer.neuron.threshold).to(torch.float64)
                margin = (distance / layer.unit).to(current.dtype)
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

    def predict(self, x: Tensor, encoder: Encoder, key: int, time_steps: int) -> Tensor:
        """Classes of one batch x (batch, *input_shape): ``time_steps`` steps of ``encoder(x, t, key)`` from a
        fresh state, then the argmax of the readout's integer v, as the deployment predicts (batch,)."""
        self.reset_state()
        for t in range(time_steps):
            self.step(encoder(x, t, key))
        assert self.readout_v is not None  # the readout ran at every step
        return self.readout_v.reshape(x.shape[0], -1).argmax(1)


@torch.no_grad()
def evaluate_hardware(network: HardwareAwareNetwork, batches: Iterable[tuple[Tensor, Tensor]], encoder: Encoder,
                      time_steps: int, device: torch.device, key_offset: int = 1 << 40) -> float:
    """Accuracy of the integer forward (argmax of the readout's integer v after T steps), with the same batches
    and encoder keys as :func:`bso_deploy.training.evaluate`; restores the train/eval mode."""
    was_training = network.training
    network.eval()
    correct = total = 0
    for index, (x, y) in enumerate(batches):
        x, y = x.to(device), y.to(device)
        correct += int((network.predict(x, encoder, key_offset + index, time_steps) == y).sum())
        total += int(y.numel())
    network.train(was_training)
    return correct / max(total, 1)
