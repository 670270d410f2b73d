"""Map a profile ``loihi`` :class:`FixedPointLayer` to what one lava-dl netx ``dense`` layer holds.

lava-dl 0.6's loader (``lava.lib.dl.netx.hdf5.Network``) builds, per ``dense`` layer, Lava's ``Dense`` and
``LIF`` processes from: an integer ``weight`` (n_out, n_in) without exponent (it picks ``num_weight_bits``
and ``weight_exp`` itself with ``lava.lib.dl.netx.utils.optimize_weight_bits``), an integer ``bias`` given to
the LIF as ``bias_mant`` with ``bias_exp = 6``, and a ``CUBA`` neuron with ``du = iDecay - 1``, ``dv =
vDecay``, ``vth = vThMant`` (the LIF of docs/fixed-point.md §3, reset to zero, bias from step 0). So a layer
maps exactly when (docs/fixed-point.md §10.5):

- its synaptic input is an exact integer dot product ``a = W x``: ``W = weight_mant * w_eff * 2**weight_exp``
  (w_eff: §4.5 for full precision, the signs for binary layers, §4.6) is an integer matrix, and netx's
  re-encoding of W (emulated by :func:`netx_effective_weight`) gives W back;
- its bias ``B = bias_mant shifted by bias_exp`` (§3.4) is a multiple of 64 with ``B / 64`` a 13-bit mantissa;
- it is dense, resets to zero, has one vth and no delayed bias (profile ``loihi``, §6.1).

:func:`compile_nir` with ``fold_thresholds=True, netx_compatible=True`` produces such layers. A non-spiking
readout (§3.7) becomes a LIF with ``vThMant = vth_max``, exact while v stays below ``vth_max << 6``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bso_deploy.hardware.network import FixedPointLayer
from bso_deploy.hardware.simulator import bias_int, dense_weight_int
from bso_deploy.hardware.spec import SPEC

__all__ = ["NetxLayer", "netx_effective_weight", "netx_layer"]

_FIX = "compile with bso_deploy.hardware.compiler.compile_nir(..., profile='loihi', fold_thresholds=True, " \
       "netx_compatible=True)"


@dataclass(frozen=True)
class NetxLayer:
    """The integers of one netx ``dense`` layer with a ``CUBA`` neuron.

    weight: (n_out, n_in) int64, ``a = weight @ x`` exactly; bias: (n_out,) int64, the LIF's bias_mant
    (bias_exp 6); i_decay = du + 1; v_decay = dv; vth_mant: the layer's vth (vth_max for a readout).
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    i_decay: int
    v_decay: int
    vth_mant: int
    spiking: bool


def _fail(layer: FixedPointLayer, message: str) -> ValueError:
    return ValueError(f"layer {layer.name!r}: {message}")


def netx_effective_weight(weight: np.ndarray) -> np.ndarray:
    """The weights Lava's fixed_pt ``Dense`` applies, divided by 2**-weight_exp, for a netx file holding
    ``weight``: lava-dl 0.6's ``optimize_weight_bits`` (scale to the 8-bit range, count the zero low bits)
    followed by Lava's ``clip_weights`` and ``truncate_weights`` (docs/fixed-point.md §4.5), in NumPy.
    Equal to ``weight`` exactly when netx carries the layer without loss."""
    weight = np.asarray(weight, dtype=np.int64)
    max_weight, min_weight = int(weight.max()), int(weight.min())
    if max_weight == 0 and min_weight == 0:
        return weight  # netx divides by the largest weight: an all-zero layer is refused by the caller
    low = -256 if max_weight > 0 else -255  # the 8-bit range of each sign mode (mixed, one-sign)
    high = 254 if min_weight < 0 else 255
    if max_weight > high or min_weight < low:
        return np.clip(weight, low, high)  # netx clips (or mis-shifts) weights beyond 8 bits
    # netx's scaling (its own sign-mode test: a maximum of 0 with negative weights counts as mixed)
    if max_weight < 0:
        signed, scale = 0, -256 / min_weight
    elif min_weight >= 0:
        signed, scale = 0, 255 / max_weight
    else:
        signed, scale = 1, min(127 / max_weight if max_weight else np.inf, -128 / min_weight)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    zero_bits = 8
    while zero_bits > 0 and np.any(weight % (1 << zero_bits)):
        zero_bits -= 1
    num_weight_bits = 8 - scale_bits - (zero_bits - signed)
    shifted = weight << scale_bits  # scale_bits >= 0 once the weights fit in 8 bits
    # Lava's Dense then detects the sign mode again and clips and truncates (§4.5)
    inhibitory, mixed = max_weight <= 0 and min_weight < 0, min_weight < 0 < max_weight
    if inhibitory:
        shifted = -shifted
    clipped = np.clip(shifted, -(1 << SPEC.weight_bits) * mixed, (1 << SPEC.weight_bits) - 1)
    dropped = SPEC.weight_bits - num_weight_bits + mixed
    if dropped < 0:  # netx asks for 9 weight bits in a one-sign mode: Lava would shift by a negative count
        return np.full_like(weight, np.iinfo(np.int64).min)
    truncated = (clipped >> dropped) << dropped
    if inhibitory:
        truncated = -truncated
    exact = truncated % (1 << scale_bits) == 0
    return np.where(exact, truncated >> scale_bits, np.iinfo(np.int64).min)  # a remainder: not representable


def _integer_weight(layer: FixedPointLayer) -> np.ndarray:
    """W with a = W x exactly (docs/fixed-point.md §4.5 - §4.7), or ValueError."""
    effective = layer.weight_mant * (layer.weight if layer.binary else dense_weight_int(layer.weight))
    if layer.weight_exp >= 0:
        return effective << layer.weight_exp
    divisor = 1 << -layer.weight_exp
    if np.any(effective % divisor):
        raise _fail(layer, f"weight_exp = {layer.weight_exp} floors the synaptic sum (docs/fixed-point.md §4.7), "
                    f"which netx cannot express (its weights carry no exponent); {_FIX}")
    return effective // divisor


def netx_layer(layer: FixedPointLayer) -> NetxLayer:
    """The netx form of ``layer``; ValueError naming the layer, what netx lacks and what to do."""
    if layer.kind != "dense":
        raise _fail(layer, f"{layer.kind!r} layers (with pooling {layer.pool}) are not written: netx 0.6 has no "
                    "pooling and profile 'loihi' is dense only; train an MLP (--model mlp) for netx")
    if layer.reset != "zero":
        raise _fail(layer, f"reset {layer.reset!r}: netx's CUBA neuron (Lava's LIF) resets v to zero; train with "
                    "--reset zero")
    if layer.spiking and np.ptp(layer.vth) != 0:
        raise _fail(layer, f"per-neuron thresholds (vth in [{layer.vth.min()}, {layer.vth.max()}]): netx has one "
                    f"vThMant per layer; {_FIX}")
    weight = _integer_weight(layer)
    if not weight.any():
        raise _fail(layer, "all weights are zero; netx's weight encoding divides by the largest weight")
    carried = netx_effective_weight(weight)
    if not np.array_equal(carried, weight):
        rows, cols = np.nonzero(carried != weight)
        raise _fail(layer, f"netx's 8-bit weight encoding changes weight[{rows[0]}, {cols[0]}] = "
                    f"{weight[rows[0], cols[0]]} (weights in [{weight.min()}, {weight.max()}]: mixed-sign layers "
                    f"need [-256, 254], one-sign layers [0, 255] or [-255, 0] with a minimum that is not a power "
                    f"of two); {_FIX}")
    bias = bias_int(layer.bias_mant, layer.bias_exp)
    if layer.bias_delay and bias.any():
        raise _fail(layer, f"bias_delay = {layer.bias_delay}: netx's LIF adds its bias from the first step; "
                    "compile with profile 'loihi'")
    unit = 1 << SPEC.state_shift  # netx gives the LIF bias_exp = 6
    if np.any(bias % unit):
        raise _fail(layer, f"biases must be multiples of {unit} (netx fixes bias_exp = {SPEC.state_shift}); {_FIX}")
    bias_mant = bias // unit
    if bias_mant.size and (bias_mant.min() < SPEC.bias_mant_min or bias_mant.max() > SPEC.bias_mant_max):
        raise _fail(layer, f"bias / {unit} in [{bias_mant.min()}, {bias_mant.max()}] exceeds the 13-bit "
                    f"bias_mant of netx (bias_exp = {SPEC.state_shift}); {_FIX}")
    vth = int(layer.vth.flat[0]) if layer.spiking else SPEC.vth_max
    return NetxLayer(name=layer.name, weight=weight, bias=bias_mant.reshape(-1), i_decay=layer.du + 1,
                     v_decay=layer.dv, vth_mant=vth, spiking=layer.spiking)
