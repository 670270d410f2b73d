"""Time-step conversions between discrete-time neurons and NIR's continuous-time nodes.

NIR describes a leaky neuron as ``tau * dv/dt = (v_leak - v) + r * I``. Forward Euler with step ``dt``
gives, per time step (this is the discretisation the importer runs, :mod:`.dynamics`)::

    v[t] = decay * v[t-1] + (dt / tau) * v_leak + gain * I[t]
    decay = 1 - dt / tau            gain = r * dt / tau

Tools disagree on ``r``:

- bso-deploy and snnTorch choose ``r = tau / dt`` so that the per-step input gain is exactly 1 and the
  decay is the trained ``lambda`` (snnTorch calls it ``beta`` and exports with ``dt = 1e-4``);
- Norse exports ``r = 1``, so its per-step input gain is ``dt / tau`` (its 1.1.0 exporter writes tau in
  units of seconds times dt, see :func:`norse_lif_to_nir`).

All arithmetic here is float64. :func:`lif_tau_r_for_steps` goes one step further than the real-number
identity: it picks the float64 ``tau`` and ``r`` nearest to ``dt * tau_steps`` and ``tau_steps`` whose
:func:`euler_coefficients` reproduce ``1 - 1/tau_steps`` and ``1.0`` bit for bit, so an exported network
re-imported in float64 matches the trained one exactly rather than to one unit in the last place.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bso_deploy.errors import InvalidInputError

SNNTORCH_DT = 1e-4  # snnTorch's exporter hard-codes this time step
NORSE_R = 1.0  # Norse exports unit resistance
MAX_ULP_SEARCH = 16  # how far lif_tau_r_for_steps looks for a bit-exact float64 representation


class EulerCoefficients(NamedTuple):
    """Per-step coefficients of a leaky node at time step dt (arrays, float64).

    decay = 1 - dt/tau; leak = dt/tau (multiplies v_leak); gain = r * dt/tau (multiplies the input)."""

    decay: np.ndarray
    leak: np.ndarray
    gain: np.ndarray


def _check_dt(dt: float) -> float:
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0.0):
        raise InvalidInputError(f"time step dt must be a finite number > 0 seconds, got {dt}")
    return dt


def euler_coefficients(tau, r, dt: float) -> EulerCoefficients:
    """Forward-Euler coefficients for ``tau * dv/dt = (v_leak - v) + r * I`` at step dt.

    tau (s) and r broadcast against each other; tau must be > 0. For ``dt > tau`` the decay is negative:
    forward Euler is then unstable, but it is still what the graph says, so it is not refused here."""
    dt = _check_dt(dt)
    tau = np.asarray(tau, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if not np.all(tau > 0):
        raise InvalidInputError(f"tau must be > 0 seconds everywhere, got min {float(np.min(tau))}")
    leak = dt / tau
    return EulerCoefficients(decay=1.0 - leak, leak=leak, gain=r * leak)


def decay_from_tau(tau, dt: float) -> np.ndarray:
    """Per-step decay ``1 - dt/tau`` (snnTorch's beta, our lambda)."""
    return euler_coefficients(tau, 1.0, dt).decay


def input_gain(tau, r, dt: float) -> np.ndarray:
    """Per-step input gain ``r * dt / tau``."""
    return euler_coefficients(tau, r, dt).gain


def tau_from_decay(decay, dt: float) -> np.ndarray:
    """Inverse of :func:`decay_from_tau`: ``tau = dt / (1 - decay)`` seconds; decay must be < 1."""
    dt = _check_dt(dt)
    decay = np.asarray(decay, dtype=np.float64)
    if not np.all(decay < 1.0):
        raise InvalidInputError(f"decay must be < 1 (a leak), got max {float(np.max(decay))}")
    return dt / (1.0 - decay)


def unit_gain_r(tau, dt: float) -> np.ndarray:
    """The ``r`` that makes the per-step input gain 1: ``r = tau / dt`` (snnTorch's and our convention)."""
    dt = _check_dt(dt)
    return np.asarray(tau, dtype=np.float64) / dt


def snntorch_leaky_to_nir(beta, dt: float = SNNTORCH_DT) -> tuple[np.ndarray, np.ndarray]:
    """(tau, r) that snnTorch writes for ``Leaky(beta)``: tau = dt / (1 - beta), r = tau / dt."""
    tau = tau_from_decay(beta, dt)
    return tau, unit_gain_r(tau, dt)


def norse_lif_to_nir(tau_mem_inv) -> tuple[np.ndarray, np.ndarray]:
    """(tau, r) in NIR's units for a Norse LIF with ``tau_mem_inv`` (1/s): tau = 1 / tau_mem_inv, r = 1.

    Norse 1.1.0's own exporter writes ``tau = dt / tau_mem_inv`` instead (tau times its dt), which runs as
    Norse does at dt = Norse's dt squared (docs/nir.md, "Third-party exporters")."""
    tau = 1.0 / np.asarray(tau_mem_inv, dtype=np.float64)
    return tau, np.full_like(tau, NORSE_R)


def _ulp_neighbours(value: float, count: int):
    """value, then the float64 numbers 1, -1, 2, -2, ... units in the last place away."""
    yield value
    up = down = value
    for _ in range(count):
        up = float(np.nextafter(up, np.inf))
        down = float(np.nextafter(down, -np.inf))
        yield up
        yield down


def lif_tau_r_for_steps(tau_steps: float, dt: float) -> tuple[float, float]:
    """NIR (tau, r) for our discrete LIF with time constant ``tau_steps`` (in time steps, > 1) at step dt.

    In real numbers tau = dt * tau_steps and r = tau / dt = tau_steps give decay 1 - 1/tau_steps and gain 1.
    In float64 ``1 - dt / (dt * tau_steps)`` can be one unit in the last place away from
    ``1 - 1/tau_steps``; this returns the float64 tau and r nearest to those values whose
    :func:`euler_coefficients` equal the trained decay and gain 1.0 exactly. Float64 cannot always hit
    both (for a few percent of non-integer tau_steps; never seen for integers): then the decay and gain are
    one unit in the last place away."""
    dt = _check_dt(dt)
    tau_steps = float(tau_steps)
    if not (math.isfinite(tau_steps) and tau_steps > 1.0):
        raise InvalidInputError(f"tau_steps must be > 1 time step, got {tau_steps}")
    target_decay = 1.0 - 1.0 / tau_steps
    tau_nearest = dt * tau_steps
    exact_decay = [c for c in _ulp_neighbours(tau_nearest, MAX_ULP_SEARCH) if 1.0 - dt / c == target_decay]
    for tau in exact_decay:
        leak = dt / tau
        r = next((c for c in _ulp_neighbours(tau_steps, MAX_ULP_SEARCH) if c * leak == 1.0), None)
        if r is not None:
            return tau, r
    return (exact_decay[0] if exact_decay else tau_nearest), tau_steps


def lif_steps_from_tau(tau: float, dt: float) -> float:
    """Inverse of :func:`lif_tau_r_for_steps` for the time constant: tau_steps = tau / dt."""
    dt = _check_dt(dt)
    return float(tau) / dt
