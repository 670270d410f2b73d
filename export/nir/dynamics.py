"""Pure per-step functions for the NIR neuron nodes the importer runs (no ``self``, inputs never mutated).

Every neuron node is one forward-Euler step of the same two equations, with coefficients from
:func:`.conversions.euler_coefficients` (the converters in :mod:`.importer` say which node uses which)::

    i_syn[t] = syn.decay * i_syn[t-1] + syn.leak * syn.v_leak + syn.gain * x[t]      (CubaLIF, CubaLI only)
    v[t]     = mem.decay * v[t-1]     + mem.leak * mem.v_leak + mem.gain * d[t]     d = i_syn[t] or x[t]
    x[t]     = x_1[t] + x_2[t] + ...  (the node's incoming edges, each added with its own gain term)
    z[t]     = v[t] > v_threshold                                                  (strict; spiking nodes)
    v[t]    <- v_reset where z[t]                (NIR's reset)
    v[t]    <- v[t] - v_threshold where z[t]     (reset "subtract", from bso-deploy metadata)

The synaptic current is updated first and the membrane is driven by the *new* current (snnTorch's
``Synaptic`` ordering). A node with several incoming edges (a recurrent loop) adds ``gain * x_k`` term by term,
left to right, in edge order: ``(decay * v + x) + W s`` rounds exactly like snnTorch's ``RLeaky``
(``beta * mem + input + recurrent(spk)``) when gain = 1. The membrane update sees the input of the same
step, which is what bso-deploy's LIF computes (``v = lambda * v + I``, see :mod:`bso_deploy.neuron`) when
decay = lambda, gain = 1, v_leak = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from bso_deploy.errors import InvalidInputError


class Leaky(NamedTuple):
    """Coefficients of ``v <- decay * v + leak * v_leak + gain * input`` (tensors broadcastable to v)."""

    decay: Tensor
    leak: Tensor
    v_leak: Tensor
    gain: Tensor


class Firing(NamedTuple):
    """Spike when v > v_threshold; then v <- v_reset, or v <- v - v_threshold when ``subtract``."""

    v_threshold: Tensor
    v_reset: Tensor
    subtract: bool


class NeuronState(NamedTuple):
    """Membrane potential v (after reset) and synaptic current i_syn (None for nodes without one)."""

    v: Tensor
    i_syn: Tensor | None


def leaky_integrate(v: Tensor, drives: Sequence[Tensor], p: Leaky) -> Tensor:
    """One Euler step ``decay * v + leak * v_leak + gain * drive_1 + gain * drive_2 ...``, left to right.

    With v_leak = 0 and gain = 1 this rounds exactly like bso-deploy's ``lambda * v + I``: the middle
    term adds an exact zero."""
    total = p.decay * v + p.leak * p.v_leak
    for drive in drives:
        total = total + p.gain * drive
    return total


def fire(v: Tensor, p: Firing) -> tuple[Tensor, Tensor]:
    """Return (spikes as bool, v after reset)."""
    fired = v > p.v_threshold
    reset_value = v - p.v_threshold if p.subtract else p.v_reset.expand_as(v)
    return fired, torch.where(fired, reset_value, v)


def initial_neuron_state(like: Tensor, membrane: Leaky, has_synapse: bool) -> NeuronState:
    """Rest state for an input batch shaped like ``like``: v = v_leak (the resting potential), i_syn = 0."""
    v = torch.zeros_like(like) + membrane.v_leak
    return NeuronState(v=v, i_syn=torch.zeros_like(like) if has_synapse else None)


def neuron_step(inputs: Sequence[Tensor], state: NeuronState, membrane: Leaky, synapse: Leaky | None,
                firing: Firing | None) -> tuple[Tensor, NeuronState]:
    """Advance one neuron node by one step (equations in the module docstring).

    inputs: the values of the node's incoming edges for this step (at least one), in edge order.
    Returns (output, new_state): the spikes (0/1 in v's dtype) for spiking nodes, else the membrane v."""
    i_syn = None
    drives = inputs
    if synapse is not None:
        if state.i_syn is None:
            raise InvalidInputError("a node with a synapse needs a state with i_syn")
        i_syn = leaky_integrate(state.i_syn, inputs, synapse)
        drives = (i_syn,)
    v = leaky_integrate(state.v, drives, membrane)
    if firing is None:
        return v, NeuronState(v=v, i_syn=i_syn)
    fired, v_after = fire(v, firing)
    return fired.to(v.dtype), NeuronState(v=v_after, i_syn=i_syn)
