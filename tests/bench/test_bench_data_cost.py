"""bench data's interleaved throughput (bso_deploy/bench/data_cost.py): order of the rounds, medians, ratios."""

from __future__ import annotations

import pytest
import torch

from bso_deploy.bench.data_cost import interleaved_samples_per_second, median_ratio, record_throughput


def recording_steps(names, calls):
    def make(name):
        def step(x, y, key, after_backward=None):
            calls.append((name, key))
        return step
    return {name: make(name) for name in names}


def test_every_trainer_warms_up_then_rounds_rotate_the_order() -> None:
    calls: list[tuple[str, int]] = []
    batches = [(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))] * 3
    rates = interleaved_samples_per_second(recording_steps(["a", "b", "c"], calls), batches, rounds=4)
    assert calls[:3] == [("a", 0), ("b", 0), ("c", 0)]  # warm-up on batch 0, key 0
    timed = [name for name, key in calls[3:] if key == 1]
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert [key for _, key in calls[3:]] == [1, 2] * 12
    assert set(rates) == {"a", "b", "c"} and all(len(v) == 4 and min(v) > 0 for v in rates.values())


def test_the_ratio_is_the_median_of_per_round_ratios() -> None:
    assert median_ratio([2.0, 10.0, 3.0], [1.0, 10.0, 1.0]) == 2.0  # not median(a) / median(b) = 3.0
    with pytest.raises(ValueError, match="equal, non-empty"):
        median_ratio([1.0], [1.0, 2.0])


def test_records_get_medians_rounds_and_ratios_to_the_baseline() -> None:
    batches = [(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))] * 2
    records: dict[str, dict] = {"tbso": {}, "ref": {}}
    record_throughput(records, recording_steps(["tbso", "ref"], []), batches, 3, "ref", 8)
    assert len(records["tbso"]["samples_per_second_T8_per_round"]) == 3
    assert "throughput_ratio_T8" in records["tbso"] and "throughput_ratio_T8" not in records["ref"]
    rounds = records["tbso"]["samples_per_second_T8_per_round"]
    assert records["tbso"]["samples_per_second_T8"] == sorted(rounds)[1]


@pytest.mark.parametrize("rounds,count", [(0, 2), (1, 1)])
def test_bad_rounds_or_too_few_batches_are_refused(rounds, count) -> None:
    batches = [(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long))] * count
    with pytest.raises(ValueError, match="rounds >= 1 and >= 2 batches"):
        interleaved_samples_per_second(recording_steps(["a"], []), batches, rounds)
