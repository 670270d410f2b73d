"""The fused path of the NumPy simulator: the step functions' arithmetic (``hardware/step_functions.py``) in
exact floats, layer by layer over a chunk of steps (docs/fixed-point.md §5.1, §1.1).

The fused path of :func:`~.simulator.simulate` computes the numbers of the step loop
(:func:`~.simulator.simulate_stepwise`) faster, using two facts. (1) The network is feed-forward and every
synapse delays by one step (§4.8), so layer k's whole spike train is known before layer k + 1 runs: each layer's
synaptic input for a chunk of steps (all T steps for small batches) is ONE matrix product over (steps * batch)
rows (a conv's: im2col, :func:`_connect_chunk`), and only the elementwise neuron update loops over time;
trailing steps without any input event (the zero flush steps of §5.2) skip the product. (2) The neuron update is
exact in floats too (§1.1): u, v, a << 6, vth << 6 and the bias are integers, ``trunc(x * f / 4096)`` is
``np.trunc(x * (f / 4096))`` (f / 4096 is a dyadic constant and the product is exact while ``|x| * f`` fits the
mantissa), the weight scale ``weight_mant * 2**weight_exp`` folds into the matrix (partial sums are exact dyadic
numbers), the rounding of a negative exponent is ``np.floor`` (``floor``) or ``np.floor(x + 0.5)`` (``nearest``,
§4.7; exact while the integer sum plus 2**(k-1) fits the mantissa), the wrap is ``np.mod``. Per layer, bounds
worked out from the weights (inputs are >= 0, so a row's sum lies between minus its negative and its positive
weight mass) pick float32 when every intermediate stays below 2**24, float64 when below 2**53 (else the step
loop runs), and decide whether the wrap (§3.2), the saturation (§3.3) and a synaptic input beyond 2**15 - 1 (§8)
can happen at all; only then does the fused path count them (§5.6), else the counts are zero.

:func:`fused_plans` gives a network's per-layer plans (None where the step loop must run),
:func:`prepare_fused` the working memory of a block of samples, :func:`run_fused` runs a block into the
arrays of the whole run (:func:`allocate_outputs`); blocks of :func:`block_samples` samples bound the
working memory whatever the batch. ``hardware/simulator.py`` checks the inputs and picks the path.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .network import FixedPointLayer, FixedPointNetwork, LayerSaturation, SimulationResult
from .spec import FixedPointSpec
from .step_functions import SynapseParams, neuron_params, synapse_params

__all__ = ["BLOCK_NEURONS", "CHUNK_ELEMENTS", "CHUNK_ROWS", "FusedLayer", "FusedOutputs", "LayerWork",
           "allocate_outputs", "block_samples", "fused_layer", "fused_plans", "prepare_fused", "run_fused"]

CHUNK_ROWS = 4096  # (steps x batch) rows per chunk: enough for BLAS to run at full speed
CHUNK_ELEMENTS = 1 << 22  # floats per layer and chunk, a bound on memory for wide (conv) layers
BLOCK_NEURONS = 1 << 19  # neurons of the widest layer per block of samples (block_samples)


class FusedLayer(NamedTuple):
    """A layer prepared for the fused path; all constants are exact in ``dtype`` (module docstring)."""

    synapse: SynapseParams  # its matrix in dtype, scaled by weight_mant * 2**weight_exp (* 2**6 if exp >= 0)
    dtype: type  # np.float32 or np.float64
    floor: bool  # weight_exp < 0: a << 6 = round(x @ matrix) * 2**6 (§4.7); else a << 6 = x @ matrix
    nearest: bool  # that rounding is to nearest, floor(x @ matrix + 0.5), not floor (§4.7)
    u_factor: float  # (4096 - (du + 1)) / 4096 (§3.1); 0.0 for du = 4095
    v_factor: float  # (4096 - dv) / 4096 (§3.3); 1.0 for dv = 0
    vth: np.ndarray  # vth << 6 (§3.5), (*output_shape)
    bias: np.ndarray | None  # (§3.4); None when zero everywhere
    bias_delay: int
    subtract: bool
    spiking: bool
    wrap: bool  # u can leave (-2**23, 2**23]: apply §3.2 at every step
    saturate: bool  # v can leave +-(2**23 - 1): apply §3.3 at every step
    count_a: bool  # |a| can exceed 2**15 - 1: count it (§5.6)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _odd_part(value: int) -> int:
    """value without its factors of 2: ``x * value / 4096`` is exact in a float while |x| * odd part fits."""
    return value >> ((value & -value).bit_length() - 1) if value else 0


def fused_layer(layer: FixedPointLayer, synapse: SynapseParams, input_max: int, steps: int,
                 spec: FixedPointSpec) -> FusedLayer | None:
    """Bounds of every intermediate of ``layer`` over ``steps`` steps; None if not exact even in float64."""
    # inputs lie in [0, input_max], so row i's sum lies in [-N_i x_max, P_i x_max] (P_i, N_i: its positive and
    # negated negative weight mass), every partial sum too (the compiler's bound, docs/fixed-point.md §10.3);
    # max(P_i, N_i) = (sum |w| + |sum w|) / 2, summed exactly in float64 over the fan-in axes of the matrix
    fan_in = 0 if synapse.kind == "dense" else (1, 2, 3)
    total = synapse.matrix.sum(axis=fan_in, dtype=np.float64)
    mass = int(((np.abs(synapse.matrix).sum(axis=fan_in, dtype=np.float64) + np.abs(total)) / 2).max())
    scaled = mass * input_max * math.prod(synapse.pool) * synapse.weight_mant  # |acc * weight_mant|
    exp = synapse.weight_exp
    drive = (scaled << exp if exp >= 0 else _ceil_div(scaled, 1 << -exp)) << spec.state_shift  # |a << 6|
    u_factor, v_factor = spec.decay_unity - (layer.du + 1), spec.decay_unity - layer.dv
    # |u_t| <= |u_{t-1}| u_factor / 4096 + drive, hence |u| <= drive * 4096 / (du + 1) (truncation only shrinks)
    u_pre = _ceil_div(drive * spec.decay_unity, layer.du + 1)
    wrap = u_pre > spec.u_max - 1  # (-2**23, 2**23] holds every |x| <= 2**23 - 1 unchanged
    u_state = min(u_pre, spec.u_max)
    neuron = neuron_params(layer, spec)
    grow = u_state + int(np.abs(neuron.bias).max())
    v_pre = grow * steps if layer.dv == 0 else _ceil_div(grow * spec.decay_unity, layer.dv)
    saturate = v_pre > spec.v_max
    v_pre = min(v_pre, spec.v_max + grow)  # the sum before the clip (§3.3); resets only shrink |v|
    v_state = min(v_pre, spec.v_max)
    nearest = exp < 0 and layer.shift_rounding == "nearest"
    half = 1 << (-exp - 1) if nearest else 0  # floor(x + 1/2) adds 2**(k-1) to the integer sum (§4.7)
    needs = [scaled + half, drive, u_pre if not wrap else u_state + drive + spec.u_modulus, v_pre,
             u_state * _odd_part(u_factor), v_state * _odd_part(v_factor), spec.vth_max << spec.state_shift]
    if not wrap and max(needs) < spec.exact_float32_bound:
        dtype = np.float32
    elif max(needs) < spec.exact_float64_bound:
        dtype = np.float64
    else:
        return None
    # the scale folded into the weights: every partial sum is (integer partial sum * weight_mant) * 2**k with
    # |integer partial sum * weight_mant| <= scaled, exact in dtype
    scale = synapse.weight_mant * 2.0 ** (exp if exp < 0 else exp + spec.state_shift)
    matrix = np.multiply(synapse.matrix, scale, dtype=dtype)
    return FusedLayer(synapse=synapse._replace(matrix=matrix), dtype=dtype, floor=exp < 0, nearest=nearest,
                       u_factor=u_factor / spec.decay_unity, v_factor=v_factor / spec.decay_unity,
                       vth=neuron.vth_scaled.astype(dtype),
                       bias=neuron.bias.astype(dtype) if np.any(neuron.bias) else None,
                       bias_delay=layer.bias_delay, subtract=layer.reset == "subtract", spiking=layer.spiking,
                       wrap=wrap, saturate=saturate,
                       count_a=drive > spec.activation_max << spec.state_shift)


class LayerWork(NamedTuple):
    """One layer's working memory for a block, reused by every chunk of steps, block and (Simulator) run."""
    drive: np.ndarray  # (chunk + 1, batch, *output_shape) plan.dtype; row 0 holds the pending sum (§4.8)
    values: np.ndarray  # (chunk * batch, ...) plan.dtype: the layer input as floats (_values_shape)
    cols: np.ndarray | None  # conv: (chunk * batch, C_in, kh, kw, H_out, W_out) plan.dtype, the window matrix
    u: np.ndarray  # (batch, *output_shape) plan.dtype, u between steps
    v: np.ndarray
    scratch: np.ndarray
    vth: np.ndarray  # vth << 6 at full shape: elementwise ops on equal shapes beat a broadcast row
    bias: np.ndarray | None


def _values_shape(layer: FixedPointLayer) -> tuple[int, ...]:
    """Per row, what a dense connection multiplies (the input or its sum pool, §4.2), or a conv's pooled
    input inside the zero border of the padding (§4.4)."""
    if layer.kind == "dense":
        return layer.pooled_shape
    channels, height, width = layer.pooled_shape
    return channels, height + 2 * layer.padding[0], width + 2 * layer.padding[1]


def _works(plans: list[FusedLayer], layers: tuple[FixedPointLayer, ...], batch: int, chunk: int) -> list[LayerWork]:
    """Every layer's working memory carved out of ONE block: a fresh page costs a fault when first touched
    (about 5 us per 4 KiB on small VMs, more than the arithmetic on it), and NumPy asks the kernel for huge
    pages for blocks of 4 MiB and more, so one block takes far fewer faults than many small arrays."""
    layouts = []
    for plan, layer in zip(plans, layers):
        shape = (batch, *layer.output_shape)
        cols = (chunk * batch, *plan.synapse.matrix.shape[1:], *layer.output_shape[1:]) if layer.kind == "conv" \
            else None
        shapes = {"drive": (chunk + 1, *shape), "values": (chunk * batch, *_values_shape(layer)), "cols": cols,
                  "u": shape, "v": shape, "scratch": shape, "vth": shape,
                  "bias": shape if plan.bias is not None else None}
        layouts.append((plan, shapes))
    align = 64  # bytes: keep every array on a cache line
    sizes = [[-(-math.prod(s) * np.dtype(plan.dtype).itemsize // align) * align if s else 0 for s in shapes.values()]
             for plan, shapes in layouts]
    block = np.empty(sum(map(sum, sizes)), np.uint8)
    works, offset = [], 0
    for (plan, shapes), layer_sizes in zip(layouts, sizes):
        arrays = {}
        for (name, shape), size in zip(shapes.items(), layer_sizes):
            arrays[name] = block[offset:offset + size].view(plan.dtype)[:math.prod(shape)].reshape(
                shape) if shape else None
            offset += size
        if arrays["cols"] is not None:
            arrays["values"].fill(0)  # the padding border, never written after
        arrays["vth"][...] = plan.vth
        if plan.bias is not None:
            arrays["bias"][...] = plan.bias
        works.append(LayerWork(**arrays))
    return works


def _sum_pool_into(x: np.ndarray, pool: tuple[int, int], out: np.ndarray) -> None:
    """out = the sum over the pool windows of integers x (..., C, H, W) (§4.2) by additions of strided views
    in out's float dtype (exact), ten times faster than NumPy's reduction over two interleaved axes."""
    parts = [x[..., i::pool[0], j::pool[1]] for i in range(pool[0]) for j in range(pool[1])]
    np.add(parts[0], parts[1], out=out, dtype=out.dtype)
    for part in parts[2:]:
        np.add(out, part, out=out, dtype=out.dtype)


def _connect_chunk(x: np.ndarray, synapse: SynapseParams, work: LayerWork, target: np.ndarray) -> None:
    """The connection (§4.2 - §4.4, scaled as the plan's matrix is) of layer inputs x (L, batch, *input_shape)
    integers into target (L * batch, *output_shape), a view of work.drive: a dense layer is one matrix
    product; a conv layer copies its (pooled) input into the zero border of the padding, gathers the window
    matrix (im2col: one strided copy per kernel offset) and multiplies (C_out, C_in kh kw) by it, row by row,
    so that the result lands in target's layout with no transposed copy."""
    lead, rows = x.shape[:2], x.shape[0] * x.shape[1]
    values = work.values[:rows]
    if synapse.kind == "dense":
        inputs = values.reshape(*lead, *(x.shape[2:] if synapse.pool == (1, 1) else values.shape[1:]))
        if synapse.pool == (1, 1):
            np.copyto(inputs, x)
        else:
            _sum_pool_into(x, synapse.pool, inputs)
        np.matmul(values.reshape(rows, -1), synapse.matrix, out=target)
        return
    (pad_h, pad_w), (stride_h, stride_w) = synapse.padding, synapse.stride
    interior = values[:, :, pad_h:values.shape[2] - pad_h, pad_w:values.shape[3] - pad_w]
    interior = interior.reshape(*lead, *interior.shape[1:])
    if synapse.pool == (1, 1):
        np.copyto(interior, x)
    else:
        _sum_pool_into(x, synapse.pool, interior)
    channels_out, _, kernel_h, kernel_w = synapse.matrix.shape
    height, width = synapse.output_shape[1:]
    cols = work.cols[:rows]
    for i in range(kernel_h):
        for j in range(kernel_w):
            cols[:, :, i, j] = values[:, :, i:i + stride_h * (height - 1) + 1:stride_h,
                                      j:j + stride_w * (width - 1) + 1:stride_w]
    np.matmul(synapse.matrix.reshape(channels_out, -1), cols.reshape(rows, -1, height * width),
              out=target.reshape(rows, channels_out, height * width))


def _drive_chunk(x: np.ndarray, plan: FusedLayer, work: LayerWork, final: bool, repeats: bool,
                 spec: FixedPointSpec) -> np.ndarray:
    """``a << 6`` (§3.1) for the L steps of a chunk: (L, batch, *output_shape), a view of work.drive whose
    row 0 is the sum computed at the step before the chunk (§4.8) and rows 1 ... L - 1 come from the layer
    input x (L, batch, *input_shape) of the chunk's steps; row L (the next chunk's row 0) from its last step,
    unless ``final`` (a sum computed at the last step would only be delivered after the run). ``repeats``:
    look for steps whose input equals the previous step's (the network input under direct encoding) and
    compute their sums once."""
    steps, batch = x.shape[:2]
    count = steps - 1 if final else steps
    active = count
    while active and not x[active - 1].any():  # steps without input events (the zero flush steps of §5.2)
        active -= 1  # add nothing: their sums are zero without a product
    work.drive[1 + active:count + 1] = 0
    if not active:
        return work.drive[:steps]
    firsts = np.arange(active)  # the steps whose sums are computed: all, or the first of each run of equal inputs
    if repeats and active > 1:
        flat = x[:active].reshape(active, -1)
        firsts = np.flatnonzero(np.concatenate([[True], (flat[1:] != flat[:-1]).any(axis=1)]))
    rows = len(firsts) * batch
    target = work.drive[1:len(firsts) + 1].reshape(rows, *plan.synapse.output_shape)
    _connect_chunk(x[firsts] if len(firsts) < active else x[:active], plan.synapse, work, target)
    if plan.floor:
        if plan.nearest:  # floor(x + 1/2): exact, the bounds include the 2**(k-1) added (fused_layer)
            np.add(target, 0.5, out=target)
        np.floor(target, out=target)
        np.multiply(target, 1 << spec.state_shift, out=target)
    ends = [*firsts[1:], active]
    for index in reversed(range(len(firsts))):  # spread run i (computed in row 1 + i <= 1 + its first step)
        if ends[index] - firsts[index] > 1 or firsts[index] != index:
            work.drive[1 + firsts[index]:1 + ends[index]] = work.drive[1 + index]
    return work.drive[:steps]


def _neuron_chunk(drive: np.ndarray, start: int, plan: FusedLayer, work: LayerWork, spikes: np.ndarray,
                  trace_u: np.ndarray | None, trace_v: np.ndarray | None, counts: LayerSaturation,
                  spec: FixedPointSpec) -> None:
    """§3.1 - §3.6 at steps start, start + 1, ... with the drive rows of those steps, in place on work.u and
    work.v; writes spikes[t] and the traces (§5.5) at those steps and adds the events of §5.6 to counts
    (only those the plan says can happen: the others stay zero)."""
    v, vth, bias = work.v, work.vth, work.bias
    if plan.count_a:  # drive is a << 6: |a| > 2**15 - 1 exactly when |drive| > (2**15 - 1) << 6
        counts.a[...] += (np.abs(drive) > spec.activation_max << spec.state_shift).sum(axis=0)
    for index in range(drive.shape[0]):
        t = start + index
        if plan.u_factor:
            u = work.u
            np.multiply(u, plan.u_factor, out=u)
            np.trunc(u, out=u)
            np.add(u, drive[index], out=u)
        elif plan.wrap:  # du = 4095 clears u: u' = a << 6, to be wrapped
            u = work.u
            np.copyto(u, drive[index])
        else:  # du = 4095 and no wrap: u' = a << 6, read in place
            u = drive[index]
        if plan.wrap:
            counts.u[...] += (u < spec.u_min) | (u > spec.u_max)
            np.subtract(u, spec.u_min, out=u)
            np.mod(u, spec.u_modulus, out=u)
            np.add(u, spec.u_min, out=u)
        if plan.v_factor != 1.0:
            np.multiply(v, plan.v_factor, out=v)
            np.trunc(v, out=v)
        np.add(v, u, out=v)
        if bias is not None and t >= plan.bias_delay:
            np.add(v, bias, out=v)
        if plan.saturate:
            counts.v[...] += (v < spec.v_min) | (v > spec.v_max)
            np.clip(v, spec.v_min, spec.v_max, out=v)
        if plan.spiking:
            fired = spikes[t].view(np.bool_)
            np.greater(v, vth, out=fired)
            # v -= fired * vth (subtract) or fired * v (zero): exact, and far faster than a masked ufunc
            np.subtract(v, np.multiply(fired, vth if plan.subtract else v, out=work.scratch), out=v)
        if trace_u is not None:
            trace_u[t] = u
        if trace_v is not None:
            trace_v[t] = v


def _chunk_steps(fx_net: FixedPointNetwork, plans: list[FusedLayer], steps: int, batch: int) -> int:
    """Steps per chunk: enough rows (steps * batch) for an efficient matrix product, few enough that the
    drive buffers and a conv's window matrix (floats per sample and step: outputs per channel x fan-in) stay
    bounded in memory."""
    widest = max(max(math.prod(layer.output_shape), math.prod(layer.input_shape),
                     0 if layer.kind == "dense" else math.prod(layer.output_shape[1:]) * plan.synapse.matrix[0].size)
                 for layer, plan in zip(fx_net.layers, plans))
    return max(1, min(steps, -(-CHUNK_ROWS // batch), CHUNK_ELEMENTS // (widest * batch)))


def fused_plans(fx_net: FixedPointNetwork, steps: int, spec: FixedPointSpec) -> list[FusedLayer] | None:
    """Every layer's plan (:func:`fused_layer`) for runs of ``steps`` steps; None when the step loop must run:
    a recurrent layer, whose input depends on its own spikes of the step before (no whole-train product,
    docs/fixed-point.md §4.9), or a layer beyond float64's exact range."""
    layers = fx_net.layers
    bounds = [spec.input_max] + [1] * (len(layers) - 1)
    plans = [None if layer.recurrent else fused_layer(layer, synapse_params(layer, bound, spec), bound, steps, spec)
             for layer, bound in zip(layers, bounds)]
    return plans if all(plan is not None for plan in plans) else None


def prepare_fused(fx_net: FixedPointNetwork, plans: list[FusedLayer], steps: int, batch: int) -> list[LayerWork]:
    """The working memory of every layer for a block of ``batch`` samples over ``steps`` steps."""
    return _works(plans, fx_net.layers, batch, _chunk_steps(fx_net, plans, steps, batch))


class FusedOutputs(NamedTuple):
    """The arrays of a whole run that the fused path fills, block of samples by block of samples (views
    of them from :meth:`block`): per layer spikes (T, batch, *shape) int8 and, when recorded, u and v
    (T, batch, *shape) int64 (empty lists otherwise); output_v: the readout's v (T, batch, *shape) int64 (the
    recorded v of the last layer when recorded; None for a spiking last layer); counts: per layer the §5.6
    :class:`LayerSaturation` (batch, *shape)."""

    spikes: list[np.ndarray]
    u: list[np.ndarray]
    v: list[np.ndarray]
    output_v: np.ndarray | None
    counts: list[LayerSaturation]

    def block(self, start: int, stop: int) -> FusedOutputs:  # views: writes go to the whole run's arrays

        cut = slice(start, stop)
        trace = None if self.output_v is None else self.output_v[:, cut]
        return FusedOutputs(spikes=[a[:, cut] for a in self.spikes], u=[a[:, cut] for a in self.u],
                            v=[a[:, cut] for a in self.v], output_v=trace,
                            counts=[LayerSaturation(*(a[cut] for a in c)) for c in self.counts])

    def result(self) -> SimulationResult:
        """The :class:`SimulationResult` of the filled arrays (§5.4: the last layer's spikes, or its v)."""
        output = self.spikes[-1].astype(np.int64) if self.output_v is None else (
            self.output_v.copy() if self.v else self.output_v)
        return SimulationResult(spikes=tuple(self.spikes), output=output, u=tuple(self.u), v=tuple(self.v),
                                saturation=tuple(self.counts))


def allocate_outputs(fx_net: FixedPointNetwork, steps: int, batch: int, record: bool) -> FusedOutputs:
    """The :class:`FusedOutputs` of a run of ``steps`` x ``batch``, allocated, not yet filled."""
    layers = fx_net.layers
    shapes = [(steps, batch, *layer.output_shape) for layer in layers]
    # np.empty, not np.zeros: every element is written, and malloc can reuse pages that calloc cannot
    spikes = [np.empty(shape, np.int8) if layer.spiking else np.zeros(shape, np.int8)
              for shape, layer in zip(shapes, layers)]
    record_u = [np.empty(shape, np.int64) for shape in shapes] if record else []
    record_v = [np.empty(shape, np.int64) for shape in shapes] if record else []
    output_v = None if layers[-1].spiking else (record_v[-1] if record else np.empty(shapes[-1], np.int64))
    counts = [LayerSaturation(*(np.zeros((batch, *layer.output_shape), np.int64) for _ in LayerSaturation._fields))
              for layer in layers]
    return FusedOutputs(spikes=spikes, u=record_u, v=record_v, output_v=output_v, counts=counts)


def block_samples(fx_net: FixedPointNetwork, batch: int) -> int:
    """Samples per block of a fused run: at most BLOCK_NEURONS neurons in the widest layer, so that a
    block's neuron arrays stay in the caches between the elementwise passes of a step, and a run's working
    memory is bounded whatever the batch; blocks of equal size (the last one may be smaller)."""
    widest = max(max(math.prod(layer.output_shape), math.prod(layer.input_shape)) for layer in fx_net.layers)
    largest = max(1, BLOCK_NEURONS // widest)
    return -(-batch // -(-batch // largest)) if batch else 0


def run_fused(fx_net: FixedPointNetwork, plans: list[FusedLayer], works: list[LayerWork], inputs: np.ndarray,
              outputs: FusedOutputs, spec: FixedPointSpec) -> None:
    """:func:`~.simulator.simulate`'s arithmetic on checked ``inputs`` (T, batch, *input_shape) with the plans
    and working memory of :func:`prepare_fused` for that T and batch, written into ``outputs`` (for this
    batch: :meth:`FusedOutputs.block`); the same numbers as the step loop."""
    steps = inputs.shape[0]
    layers = fx_net.layers
    record = bool(outputs.u)
    for work in works:  # §3.8: zero state and zero pending sums before step 0
        work.u.fill(0)
        work.v.fill(0)
        work.drive[0] = 0
    chunk = works[0].drive.shape[0] - 1
    for start in range(0, steps, chunk):
        stop = min(steps, start + chunk)
        x = inputs[start:stop]
        for k, (plan, work) in enumerate(zip(plans, works)):
            drive = _drive_chunk(x, plan, work, stop == steps, k == 0, spec)
            trace_v = outputs.v[k] if record else (outputs.output_v if k == len(layers) - 1 else None)
            _neuron_chunk(drive, start, plan, work, outputs.spikes[k], outputs.u[k] if record else None, trace_v,
                          outputs.counts[k], spec)
            work.drive[0] = work.drive[stop - start]  # the pending sum moves to row 0 for the next chunk
            x = outputs.spikes[k][start:stop]
