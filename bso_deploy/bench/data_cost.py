"""Training cost of ``bso-deploy bench data``: exact activation memory and interleaved throughput.

Throughput on a shared machine: timing one trainer after another lets a busy minute fall on one side of a
ratio only. :func:`interleaved_samples_per_second` therefore warms every trainer up on the first batch and
then runs ``rounds`` rounds; in round r every trainer trains on the same timed batches, in the order of the
trainers rotated by r. A trainer's figure is the median of its per-round samples per second, and a ratio of
two trainers is the median of their per-round ratios (:func:`median_ratio`), so that a slow phase of the
machine hits both sides of the ratios it is in.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..memory import SavedTensorMeter
from .snntorch_baseline import BatchStep

__all__ = ["activation_bytes", "interleaved_samples_per_second", "median_ratio", "record_throughput",
           "samples_per_second"]

Batch = tuple[torch.Tensor, torch.Tensor]


def activation_bytes(step: BatchStep, parameters: list[torch.Tensor], batch: Batch) -> int:
    """Peak bytes saved for backward while ``step`` trains on one batch (parameters not counted)."""
    with SavedTensorMeter(parameters) as meter:
        step(*batch, 0, meter.release)
    return meter.peak_bytes


def samples_per_second(step: BatchStep, batches: Sequence[Batch]) -> float:
    """Training samples per second of ``step`` over ``batches`` (wall time, after the caller's warm-up)."""
    start = time.perf_counter()
    for key, (x, y) in enumerate(batches, start=1):
        step(x, y, key)
    return sum(len(y) for _, y in batches) / (time.perf_counter() - start)


def interleaved_samples_per_second(steps: Mapping[str, BatchStep], batches: Sequence[Batch],
                                   rounds: int) -> dict[str, list[float]]:
    """Per trainer, its samples per second in each of ``rounds`` rounds over ``batches[1:]`` (``batches[0]``
    warms every trainer up first); round r runs the trainers in their order rotated by r."""
    if rounds < 1 or len(batches) < 2:
        raise ValueError(f"interleaved throughput needs rounds >= 1 and >= 2 batches, got {rounds} and "
                         f"{len(batches)}")
    names = list(steps)
    for name in names:
        steps[name](*batches[0], 0)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(samples_per_second(steps[name], batches[1:]))
    return rates


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median over rounds of numerator[r] / denominator[r] (equal lengths)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"median_ratio needs two equal, non-empty sequences, got {len(numerator)} and "
                         f"{len(denominator)}")
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def record_throughput(records: Mapping[str, dict[str, Any]], steps: Mapping[str, BatchStep], batches: Sequence[Batch],
                      rounds: int, baseline: str, time_steps: int) -> None:
    """Interleaved throughput of ``steps`` (by name, ``baseline`` among them) into their ``records``:
    ``samples_per_second_T<time_steps>`` (the median over rounds), its ``_per_round`` figures and, for every
    name but the baseline, ``throughput_ratio_T<time_steps>``, the median per-round ratio to the baseline."""
    rates = interleaved_samples_per_second(steps, batches, rounds)
    key = f"samples_per_second_T{time_steps}"
    for name, record in records.items():
        record[key] = statistics.median(rates[name])
        record[f"{key}_per_round"] = rates[name]
        if name != baseline:
            record[f"throughput_ratio_T{time_steps}"] = median_ratio(rates[name], rates[baseline])
