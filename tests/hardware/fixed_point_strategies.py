"""Hypothesis strategies for random fixed-point networks and inputs, shared by the tests of the simulator and
of the torch reference.

Networks in both profiles (dense and conv, pooling, binary and 8-bit synapses of every sign mode, readouts)
with parameters pulled toward the edges of docs/fixed-point.md: decays 0 and 4095, thresholds 0 and the
maximum, biases and exponents at their limits, both shift roundings (§4.7, profile bso), bias delays from 0
to past the end of the run, weight exponents that drive u through the wrap and v into saturation, and a
eighth of the dense spiking layers recurrent (§4.9; ``simulate`` runs those networks as a step loop).
"""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.spec import SPEC
from hypothesis import strategies as st

__all__ = ["edgy", "inputs_for", "networks", "replace_layer", "weights_for"]


def edgy(low: int, high: int, *edges: int) -> st.SearchStrategy[int]:
    """Integers in [low, high], a third of the time one of the range ends or the given edges."""
    return st.one_of(st.sampled_from((low, high, *edges)), st.integers(low, high), st.integers(low, high))


def weights_for(rng: np.random.Generator, shape: tuple[int, ...], binary: bool, mode: str) -> np.ndarray:
    if binary:
        return rng.choice(SPEC.binary_weight_values, size=shape)
    weight = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=shape)
    return {"mixed": weight, "excitatory": np.abs(weight) % (SPEC.weight_max + 1),
            "inhibitory": -np.abs(weight), "small": weight % 5 - 2}[mode]


@st.composite
def networks(draw: st.DrawFn, profile: str | None = None) -> FixedPointNetwork:
    profile = profile or draw(st.sampled_from(["loihi", "bso"]))
    bso = profile == "bso"
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = bso and draw(st.booleans())
    shape = (draw(st.integers(1, 2)), 2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3))) if image else (
        draw(st.integers(1, 9)),)
    input_shape, layers = shape, []
    n_layers = draw(st.integers(1, 3))
    for index in range(n_layers):
        last = index == n_layers - 1
        conv = bso and len(shape) == 3 and not (last and draw(st.booleans()))
        pool = (2, 2) if bso and len(shape) == 3 and shape[1] % 2 == 0 and shape[2] % 2 == 0 and draw(
            st.booleans()) else (1, 1)
        pooled = shape if pool == (1, 1) else (shape[0], shape[1] // 2, shape[2] // 2)
        if conv:
            kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
            padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
            kernel = tuple(min(k, pooled[1 + a] + 2 * padding[a]) for a, k in enumerate(kernel))
            weight_shape = (draw(st.integers(1, 3)), pooled[0], *kernel)
            geometry = {"stride": (draw(st.integers(1, 2)), draw(st.integers(1, 2))), "padding": padding}
        else:
            weight_shape, geometry = (draw(st.integers(1, 8)), int(np.prod(pooled))), {}
        binary = draw(st.booleans())
        mode = draw(st.sampled_from(["mixed", "excitatory", "inhibitory", "small"]))
        layer = FixedPointLayer(
            name=f"layer{index}", kind="conv" if conv else "dense", input_shape=shape, pool=pool,
            weight=weights_for(rng, weight_shape, binary, mode), binary=binary,
            weight_mant=draw(edgy(1, SPEC.weight_mant_max)) if binary else 1,
            weight_exp=draw(edgy(SPEC.weight_exp_min, SPEC.weight_exp_max, 0)),
            du=draw(edgy(0, SPEC.decay_max, SPEC.decay_unity // 2)),
            dv=draw(edgy(0, SPEC.decay_max, SPEC.decay_unity // 2)),
            vth=0, bias_mant=0, bias_exp=0,
            reset=draw(st.sampled_from(["zero", "subtract"])) if bso else "zero",
            shift_rounding=draw(st.sampled_from(["floor", "nearest"])) if bso else "floor",
            spiking=not (last and draw(st.booleans())), **geometry)
        out = layer.output_shape
        vth_mode = draw(st.sampled_from(["scalar", "edges", "random"])) if bso else "scalar"
        vth = {"scalar": draw(edgy(0, SPEC.vth_max, 1, 64)),
               "edges": rng.choice([0, 1, SPEC.vth_max], size=out),
               "random": rng.integers(0, 1 + int(rng.choice([50, 5000, SPEC.vth_max])), size=out)}[vth_mode]
        bias_mant = rng.choice([SPEC.bias_mant_min, -3, -1, 0, 1, SPEC.bias_mant_max], size=out) if draw(
            st.booleans()) else rng.integers(-300, 301, size=out)
        bias_exp = rng.integers(SPEC.bias_exp_min, SPEC.bias_exp_max + 1, size=out) if draw(st.booleans()) else \
            draw(edgy(SPEC.bias_exp_min, SPEC.bias_exp_max, -1, 0))
        if not bso and draw(st.booleans()):
            bias_mant = 0  # profile loihi delays only a zero bias (docs/fixed-point.md §6.1)
        # a delay of 0, of the layer's first input (index + 1), or anywhere up to beyond the run's end
        bias_delay = draw(edgy(0, 13, index + 1)) if bso or not np.any(bias_mant) else 0
        recurrent = {}
        if layer.kind == "dense" and layer.spiking and draw(st.integers(0, 7)) == 0:  # a recurrent synapse (§4.9)
            recurrent_binary = draw(st.booleans())
            recurrent = dict(recurrent_weight=weights_for(rng, (out[0], out[0]), recurrent_binary, draw(
                st.sampled_from(["mixed", "excitatory", "inhibitory", "small"]))), recurrent_binary=recurrent_binary,
                recurrent_weight_mant=draw(edgy(1, SPEC.weight_mant_max)) if recurrent_binary else 1,
                recurrent_weight_exp=draw(edgy(SPEC.weight_exp_min, SPEC.weight_exp_max, 0)))
        layers.append(replace_layer(layer, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, bias_delay=bias_delay,
                                    **recurrent))
        shape = out
    return FixedPointNetwork(profile, input_shape, tuple(layers))


def replace_layer(layer: FixedPointLayer, **changes) -> FixedPointLayer:
    return FixedPointLayer.from_dict({**layer.to_dict(), **changes})


@st.composite
def inputs_for(draw: st.DrawFn, fx_net: FixedPointNetwork) -> np.ndarray:
    """(T, batch, *input_shape) network inputs of one kind (graded, 0/1 spikes, all maximal, sparse, or a few
    frames each repeated for some steps, as direct encoding repeats an image), then 0 ... latency zero steps."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps, batch = draw(st.integers(1, 10)), draw(st.integers(1, 3))
    shape = (steps, batch, *fx_net.input_shape)
    kind = draw(st.sampled_from(["graded", "spikes", "max", "sparse", "repeated"]))
    frames = rng.integers(0, SPEC.input_max + 1, size=shape) * (rng.random((steps, 1, *shape[2:])) < 0.8)
    values = {"graded": rng.integers(0, SPEC.input_max + 1, size=shape),
              "spikes": rng.integers(0, 2, size=shape),
              "max": np.full(shape, SPEC.input_max),
              "sparse": rng.integers(0, SPEC.input_max + 1, size=shape) * (rng.random(shape) < 0.2),
              "repeated": frames[np.sort(rng.integers(0, min(3, steps), size=steps))]}[kind]  # runs of 3 frames
    dtype = draw(st.sampled_from([np.uint8, np.int32, np.int64]))
    return append_zero_steps(values.astype(dtype), draw(st.integers(0, fx_net.latency)))


