"""How fast a network runs on Lava: :func:`measure_lava_deployment` (a benchmark helper, no test asserts on it)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..network import FixedPointNetwork
from .deploy import deploy

__all__ = ["measure_lava_deployment"]


def measure_lava_deployment(fx_net: FixedPointNetwork, inputs: np.ndarray, copies: int = 1) -> dict[str, Any]:
    """Deploy ``fx_net`` (with ``copies``), run ``inputs`` (T, batch, ...) integers twice (the first run
    compiles) and time it.

    Returns backend, profile, mode ("streamed": our processes, one Lava run per chunk of samples;
    "builtin-per-sample" for profile loihi: Lava's Dense + LIF, one Lava run per sample), copies, batch,
    time_steps, lava_steps (Lava time steps of one run), compile_seconds, first_run_seconds, run_seconds (the
    second run), seconds_per_step (per Lava time step), seconds_per_sample, samples_per_second."""
    inputs = np.asarray(inputs)
    steps, batch = int(inputs.shape[0]), int(inputs.shape[1])
    with deploy(fx_net, copies=copies) as network:
        begin = time.perf_counter()
        network.run(inputs)
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        network.run(inputs)
        seconds = time.perf_counter() - begin
        compile_seconds = network.compile_seconds
    lava_steps = steps * -(-batch // copies)
    return {"backend": "lava", "profile": fx_net.profile,
            "mode": "streamed" if fx_net.profile != "loihi" else "builtin-per-sample", "copies": copies,
            "batch": batch, "time_steps": steps, "lava_steps": lava_steps, "compile_seconds": compile_seconds,
            "first_run_seconds": first, "run_seconds": seconds, "seconds_per_step": seconds / lava_steps,
            "seconds_per_sample": seconds / batch, "samples_per_second": batch / seconds}
