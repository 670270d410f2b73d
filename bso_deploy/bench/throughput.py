"""Training throughput of T-BSO and BSO against snnTorch's BPTT, interleaved: issue 13's throughput target
("T-BSO training throughput at T = 8 at least that of snnTorch BPTT on the same network").

``python -m bso_deploy.bench.throughput`` builds the trainers ``bso-deploy bench data`` times
(:func:`bso_deploy.bench.data.bso_trainer`, :func:`bso_deploy.bench.snntorch_baseline.snntorch_trainer`:
the same network, encoder, loss, batch and torch threads) on synthetic inputs of the data set's shape
(uniform in [0, 1), labels uniform), warms each up on one batch, then runs ``rounds`` rounds; in each round
every trainer trains on the same ``batches`` batches, in an order rotated from round to round. Per trainer
and round it records samples per second of wall time and of this thread's CPU time (``time.thread_time``:
what a loaded machine's descheduling does not inflate). The figures are the medians over the rounds, and
``ratios`` the median of each method's per-round ratio to snnTorch, so a slow phase of the machine hits both
sides of a ratio. ``--profile`` prints torch.profiler's operators of one more batch per trainer.

JSON (``--out``): ``rows`` (model, method, wall / cpu samples per second, per-round values), ``ratios``
(model, method, wall, cpu), ``settings``, ``command``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import TensorDataset

from ..data import DatasetSplit
from ..encoding import make_encoder
from ..io import atomic_write_json
from ..training import build_network
from .data import DataBenchConfig, bso_trainer
from .snntorch_baseline import BatchStep, snntorch_trainer

__all__ = ["BASELINE", "ThroughputConfig", "main", "run_throughput"]

BASELINE = "snntorch-bptt"
METHODS = ("tbso", "bso", "bop", BASELINE)
INPUT_SHAPES = {"mlp": (784,), "cnn": (1, 28, 28)}  # Fashion-MNIST's, as the MLP and the CNN see it
NUM_CLASSES = 10


@dataclass(frozen=True)
class ThroughputConfig:
    models: tuple[str, ...] = ("mlp", "cnn")
    methods: tuple[str, ...] = ("tbso", "bso", BASELINE)
    time_steps: int = 8
    batch_size: int = 128
    batches: int = 8  # timed batches per trainer and round
    rounds: int = 5
    threads: int = 1
    seed: int = 0
    profile: bool = False
    out: str = "runs/throughput/throughput.json"

    def __post_init__(self) -> None:
        for name, valid in (("models", tuple(INPUT_SHAPES)), ("methods", METHODS)):
            values = tuple(getattr(self, name))
            if not values or any(v not in valid for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names among {', '.join(valid)}, got {values!r}")
            object.__setattr__(self, name, values)
        if BASELINE not in self.methods:
            raise ValueError(f"methods must include {BASELINE}, the baseline of the ratios")
        for name in ("time_steps", "batch_size", "batches", "rounds", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def synthetic_split(model: str, batch_size: int, count: int, seed: int) -> DatasetSplit:
    """``count`` batches of uniform [0, 1) inputs of ``model``'s Fashion-MNIST shape and uniform labels."""
    generator = torch.Generator().manual_seed(seed)
    shape = INPUT_SHAPES[model]
    data = TensorDataset(torch.rand((count * batch_size, *shape), generator=generator),
                         torch.randint(0, NUM_CLASSES, (count * batch_size,), generator=generator))
    return DatasetSplit(train=data, test=data, input_shape=shape, num_classes=NUM_CLASSES, name="fashion-mnist")


def make_trainer(config: ThroughputConfig, model: str, method: str, split: DatasetSplit) -> BatchStep:
    """The batch step ``bso-deploy bench data`` times for (model, method) at ``config.time_steps``."""
    bench = DataBenchConfig(dataset="fashion-mnist", models=(model,), batch_size=config.batch_size,
                            seed=config.seed)
    if method != BASELINE:
        return bso_trainer(bench, model, method, split, config.time_steps)[0]
    train = bench.train_config(model, "tbso", config.time_steps)
    reference = build_network(train, split.input_shape, split.num_classes)
    encoder = make_encoder(train.encoder, seed=config.seed)
    return snntorch_trainer(reference, encoder, config.time_steps, split.num_classes, train.mse_weight)[0]


def timed(step: BatchStep, batches: list) -> tuple[float, float]:
    """(wall, CPU) samples per second of ``step`` over ``batches``."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for key, (x, y) in enumerate(batches, start=1):
        step(x, y, key)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    samples = sum(len(y) for _, y in batches)
    return samples / wall, samples / max(cpu, 1e-9)


def profile_table(step: BatchStep, batch: tuple, rows: int = 15) -> str:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step(*batch, 0)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def model_results(config: ThroughputConfig, model: str) -> tuple[list[dict], list[dict]]:
    split = synthetic_split(model, config.batch_size, config.batches + 1, config.seed)
    tensors = split.train.tensors
    batches = [(tensors[0][i:i + config.batch_size], tensors[1][i:i + config.batch_size])
               for i in range(0, len(tensors[1]), config.batch_size)]
    steps = {method: make_trainer(config, model, method, split) for method in config.methods}
    for step in steps.values():
        step(*batches[0], 0)  # warm-up
    wall: dict[str, list[float]] = {method: [] for method in steps}
    cpu: dict[str, list[float]] = {method: [] for method in steps}
    for round_index in range(config.rounds):
        shift = round_index % len(config.methods)
        for method in config.methods[shift:] + config.methods[:shift]:
            wall_rate, cpu_rate = timed(steps[method], batches[1:])
            wall[method].append(wall_rate)
            cpu[method].append(cpu_rate)
    if config.profile:
        for method, step in steps.items():
            print(f"--- {model} {method}: one batch\n{profile_table(step, batches[1])}")
    rows = [{"model": model, "method": method, "wall_samples_per_second": statistics.median(wall[method]),
             "cpu_samples_per_second": statistics.median(cpu[method]), "wall_per_round": wall[method],
             "cpu_per_round": cpu[method]} for method in config.methods]
    ratios = [{"model": model, "method": method,
               "wall": statistics.median(a / b for a, b in zip(wall[method], wall[BASELINE], strict=True)),
               "cpu": statistics.median(a / b for a, b in zip(cpu[method], cpu[BASELINE], strict=True))}
              for method in config.methods if method != BASELINE]
    return rows, ratios


def format_table(report: dict[str, Any]) -> str:
    settings = report["settings"]
    lines = [f"training throughput, T = {settings['time_steps']}, batch {settings['batch_size']}, "
             f"{settings['threads']} thread(s), median of {settings['rounds']} interleaved rounds of "
             f"{settings['batches']} batches (samples/s)",
             f"{'model':6} {'method':14} {'wall':>9} {'cpu':>9} {'wall ratio':>11} {'cpu ratio':>10}"]
    ratios = {(r["model"], r["method"]): r for r in report["ratios"]}
    for row in report["rows"]:
        ratio = ratios.get((row["model"], row["method"]))
        wall_ratio, cpu_ratio = ("-", "-") if ratio is None else (f"{ratio['wall']:.3f}", f"{ratio['cpu']:.3f}")
        lines.append(f"{row['model']:6} {row['method']:14} {row['wall_samples_per_second']:9.1f} "
                     f"{row['cpu_samples_per_second']:9.1f} {wall_ratio:>11} {cpu_ratio:>10}")
    return "\n".join(lines)


def command_line(config: ThroughputConfig) -> str:
    return " ".join(["python -m bso_deploy.bench.throughput", "--models", ",".join(config.models), "--methods",
                     ",".join(config.methods), "--time-steps", str(config.time_steps), "--batch-size",
                     str(config.batch_size), "--batches", str(config.batches), "--rounds", str(config.rounds),
                     "--threads", str(config.threads), "--seed", str(config.seed), "--out", config.out]
                    + (["--profile"] if config.profile else []))


def run_throughput(config: ThroughputConfig) -> dict[str, Any]:
    """Measure every (model, method), print the table and write the JSON to ``config.out``."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    rows: list[dict] = []
    ratios: list[dict] = []
    try:
        for model in config.models:
            model_rows, model_ratios = model_results(config, model)
            rows += model_rows
            ratios += model_ratios
    finally:
        torch.set_num_threads(previous_threads)
    report = {"rows": rows, "ratios": ratios, "settings": {**asdict(config), "torch_version": torch.__version__},
              "command": command_line(config)}
    atomic_write_json(config.out, report)
    print(format_table(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    defaults = ThroughputConfig()
    parser = argparse.ArgumentParser(prog="python -m bso_deploy.bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(defaults.models), help="mlp, cnn (comma separated)")
    parser.add_argument("--methods", default=",".join(defaults.methods),
                        help=f"among {', '.join(METHODS)} (comma separated; {BASELINE} is required)")
    for name in ("time_steps", "batch_size", "batches", "rounds", "threads", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of one batch each")
    parser.add_argument("--out", default=defaults.out, help="JSON file to write")
    args = parser.parse_args(argv)
    try:
        config = ThroughputConfig(models=tuple(m for m in args.models.split(",") if m),
                                  methods=tuple(m for m in args.methods.split(",") if m),
                                  time_steps=args.time_steps, batch_size=args.batch_size, batches=args.batches,
                                  rounds=args.rounds, threads=args.threads, seed=args.seed, profile=args.profile,
                                  out=args.out)
    except ValueError as error:
        parser.error(str(error))
    run_throughput(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
