"""``bso-deploy bench learn``: learning steps per second of the on-chip rule on the simulator, the torch
reference and the Lava learning process, on the same stream.

The network is a seeded two-layer profile-``bso`` network of the digits shape, built directly as a
FixedPointNetwork (no training: the speed does not depend on the weights' values): 64 graded inputs -> a
spiking full-precision layer of ``hidden`` neurons -> a binary readout of 10 neurons that learns from its
on-chip error (docs/onchip-learning.md §5). The stream is the digits images (scikit-learn, pixel values
0..16 scaled to 0..240) with their labels, T input steps + the latency per sample. Every backend's learner
is built, warmed up on ``warmup`` samples (Lava compiles its network then), and timed on ``samples``
samples. Before the table, the backends' flip events, predictions and final states are checked identical.

Records (``bench/learn.json``: ``records``): backend, samples, time_steps, steps_per_sample, seconds,
samples_per_second, steps_per_second (network steps: T + latency per sample), learning_steps_per_second (T per
sample: the steps in which the readout learns), learning_synapses, variant, network; the table ends with sim /
lava. Then, in the same run, the scenario table (:mod:`.learn_table`: ``table``, one row per scenario x learner
of the adaptation experiment, ``table_samples`` stream samples) and issue 14's ``targets`` (value, threshold,
met), the speed target among them; learn.png shows the speeds and the accuracy along each stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bso_deploy.hardware.learners import get_learner
from bso_deploy.hardware.learning_rule import LearningRule
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork

from ..data import load_digits_arrays
from ..experiments.learn_report import jsonable
from ..io import atomic_write_json
from ..options import LEARNER_NAMES as BACKENDS
from .learn_table import (
    DEFAULT_LEARNERS,
    DEFAULT_SCENARIOS,
    adaptation_configs,
    format_scenario_table,
    learn_targets,
    plot_stream,
    run_learn_table,
)

__all__ = ["LearnBenchConfig", "build_learn_bench", "format_learn_table", "run_learn_bench"]

N_IN, N_OUT = 64, 10


@dataclass(frozen=True)
class LearnBenchConfig:
    backends: tuple[str, ...] = field(default=BACKENDS)
    samples: int = 200
    warmup: int = 4
    time_steps: int = 4
    hidden: int = 128
    variant: str = "tbso"
    seed: int = 0
    threads: int = 1
    out_dir: str = "bench"
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS  # of learn_table.SCENARIOS; () skips the scenario table
    learners: tuple[str, ...] = DEFAULT_LEARNERS  # of learn_table.LEARNERS
    table_samples: int = 1000
    adaptation: dict = field(default_factory=dict)  # AdaptationConfig fields over every row's (e.g. a tiny net)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        object.__setattr__(self, "learners", tuple(self.learners))
        if self.scenarios and not self.learners:
            raise ValueError("learners must name at least one learner configuration for the scenario table")
        for scenario in self.scenarios:  # unknown names and bad fields fail before any run
            adaptation_configs(scenario, self.learners, max(1, self.table_samples), self.adaptation)
        backends = tuple(self.backends)
        if not backends or any(backend not in BACKENDS for backend in backends) or len(set(backends)) != len(backends):
            raise ValueError(f"backends must be distinct names among {', '.join(BACKENDS)}, got {self.backends!r}")
        object.__setattr__(self, "backends", backends)
        for name in ("samples", "warmup", "time_steps", "hidden", "threads", "table_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.variant not in ("tbso", "bso"):
            raise ValueError(f"variant must be tbso or bso, got {self.variant!r}")


def build_learn_bench(config: LearnBenchConfig):
    """(fx_net, rule, inputs (T, N, 64) int64, labels (N,)) for ``config``: warm-up samples first."""
    rng = np.random.default_rng(config.seed)
    hidden = config.hidden
    layers = (
        FixedPointLayer(name="hidden", kind="dense", input_shape=(N_IN,),
                        weight=rng.integers(-40, 41, (hidden, N_IN)) * 2, weight_exp=-4, du=4095, dv=2048,
                        vth=rng.integers(40, 120, hidden), bias_delay=1,
                        reset="subtract"),
        FixedPointLayer(name="readout", kind="dense", input_shape=(hidden,), binary=True,
                        weight=rng.choice([-1, 1], (N_OUT, hidden)), weight_mant=1, du=4095, dv=0, bias_delay=2,
                        spiking=False),
    )
    fx_net = FixedPointNetwork(profile="bso", input_shape=(N_IN,), layers=layers)
    rule = LearningRule(variant=config.variant, time_steps=config.time_steps, error_shift=6, error_target=8,
                        flip_threshold=40 if config.variant == "bso" else 6, seed=config.seed)
    pixels, digit_labels = load_digits_arrays()
    count = config.warmup + config.samples
    order = rng.permutation(len(digit_labels))[:count] if count <= len(digit_labels) else (
        rng.integers(0, len(digit_labels), count))
    images = (pixels[order] * 15).astype(np.int64)  # 0..16 -> 0..240: graded 8-bit input (§5.3)
    inputs = np.broadcast_to(images, (config.time_steps, *images.shape)).copy()
    return fx_net, rule, inputs, digit_labels[order]


def _learner(backend: str, fx_net, rule):
    return get_learner(backend)(fx_net, rule, layer=-1)


def run_learn_bench(config: LearnBenchConfig, progress: bool = True) -> dict:
    """Time every backend on the same stream, check they agree, run the scenario table, print both, write
    learn.json ({"records", "table", "targets"}) and learn.png; returns what learn.json holds."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        fx_net, rule, inputs, labels = build_learn_bench(config)
        warm, timed = slice(0, config.warmup), slice(config.warmup, None)
        steps_per_sample = rule.time_steps + len(fx_net.layers)
        records, outcomes = [], {}
        for backend in tqdm(config.backends, desc="bench learn", disable=None if progress else True):
            learner = _learner(backend, fx_net, rule)
            try:
                learner.run(inputs[:, warm], labels=labels[warm])
                start = time.perf_counter()
                result = learner.run(inputs[:, timed], labels=labels[timed])
                seconds = time.perf_counter() - start
                outcomes[backend] = (result, learner.state)
            finally:
                close = getattr(learner, "close", None)
                if close is not None:
                    close()
            samples = config.samples
            records.append({"backend": backend, "samples": samples, "time_steps": rule.time_steps,
                            "steps_per_sample": steps_per_sample, "seconds": seconds,
                            "samples_per_second": samples / seconds,
                            "steps_per_second": samples * steps_per_sample / seconds,
                            "learning_steps_per_second": samples * rule.time_steps / seconds,
                            "learning_synapses": N_OUT * config.hidden, "variant": rule.variant,
                            "flips": int(result.flip_events.shape[0]),
                            "network": f"bso {N_IN}-{config.hidden}-{N_OUT}, readout learns"})
        check_identical(outcomes)
    finally:
        torch.set_num_threads(previous_threads)
    print(format_learn_table(records))
    table = run_learn_table(config.scenarios, config.learners, config.table_samples, config.adaptation,
                            progress=progress) if config.scenarios else []
    speed = {r["backend"]: r["learning_steps_per_second"] for r in records}
    data = {"records": records, "table": table, "targets": learn_targets(table, speed)}
    out = Path(config.out_dir)
    atomic_write_json(out / "learn.json", jsonable(data))
    plot_stream(table, records, out / "learn.png")
    print(format_scenario_table(table, data["targets"]))
    return jsonable(data)


def check_identical(outcomes: dict) -> None:
    """Every backend's flip events, predictions and final learning state equal the first's (AssertionError)."""
    names = list(outcomes)
    first_result, first_state = outcomes[names[0]]
    for name in names[1:]:
        result, state = outcomes[name]
        np.testing.assert_array_equal(result.flip_events, first_result.flip_events,
                                      err_msg=f"{name} != {names[0]}: flip events")
        np.testing.assert_array_equal(result.predictions, first_result.predictions,
                                      err_msg=f"{name} != {names[0]}: predictions")
        for part in first_state._fields:
            np.testing.assert_array_equal(np.asarray(getattr(state, part)), np.asarray(getattr(first_state, part)),
                                          err_msg=f"{name} != {names[0]}: state {part}")


def format_learn_table(records: list[dict]) -> str:
    header = f"{'backend':<7} {'samples':>8} {'samples/s':>11} {'steps/s':>11} {'learning steps/s':>17} {'flips':>7}"
    lines = [header, "-" * len(header)]
    for r in records:
        lines.append(f"{r['backend']:<7} {r['samples']:>8} {r['samples_per_second']:>11.1f} "
                     f"{r['steps_per_second']:>11.1f} {r['learning_steps_per_second']:>17.1f} {r['flips']:>7}")
    by = {r["backend"]: r["learning_steps_per_second"] for r in records}
    if "lava" in by:
        for other in ("sim", "torch"):
            if other in by:
                lines.append(f"{other} / lava: {by[other] / by['lava']:.1f}x learning steps per second")
    return "\n".join(lines)
