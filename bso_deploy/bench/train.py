"""``bso-deploy bench train``: memory, optimizer state, checkpoint size, speed and accuracy of T-BSO, BSO,
Bop and the BPTT-STE baseline across time-step counts, all measured in one run.

Per (method, T) record (``bench/train.json`` is a list of them):

- ``activation_bytes``: bytes of tensors saved for backward per training step, counted exactly with
  ``saved_tensors_hooks`` (:class:`bso_deploy.memory.SavedTensorMeter`) on one batch; for online methods the
  peak over the T per-step graphs, for BPTT the whole unrolled graph. ``cuda_peak_bytes`` when on CUDA.
- ``state_bits_per_weight``: bits of training state kept per binary weight beyond the deployed 1-bit weight
  (momentum and the amortised per-step second moment for T-BSO; latent weight plus Adam's two moments for
  BPTT-STE), read off the optimizer's actual state tensors.
- ``checkpoint_bits_per_weight``: bits per binary weight that the written checkpoint uses for the weights.
- ``epoch_seconds``: median wall time of the training epochs; ``test_accuracy`` after ``epochs`` epochs.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint
from ..config import TrainConfig
from ..data import load_dataset
from ..encoding import make_encoder
from ..io import atomic_write_json
from ..layers import BINARY_LAYER_TYPES
from ..memory import SavedTensorMeter
from ..run import TrainingRun
from ..training import BATCH_TRAINERS, build_network, make_optimizers, resolve_device
from .report import format_table, plot_train_bench

METHODS = ("tbso", "bso", "bop", "bptt-ste")
TIME_STEPS = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class TrainBenchConfig:
    methods: tuple[str, ...] = METHODS
    time_steps: tuple[int, ...] = TIME_STEPS
    epochs: int = 12
    model: str = "mlp"
    seed: int = 0
    batch_size: int = 32
    device: str = "cpu"
    out_dir: str = "bench"
    memory_only: bool = False
    threads: int = 1  # torch intra-op threads; the digits MLP is too small to gain from more

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; valid: {', '.join(METHODS)}")
        if self.model not in ("mlp", "vgg"):
            raise ValueError(f"bench train supports --model mlp or vgg, got {self.model!r}")
        if any(t < 1 for t in self.time_steps) or self.epochs < 1:
            raise ValueError("time steps and epochs must be >= 1")


def _train_config(bench: TrainBenchConfig, method: str, time_steps: int) -> TrainConfig:
    dataset = "digits" if bench.model == "mlp" else "cifar10"
    return TrainConfig(dataset=dataset, method=method, model=bench.model, time_steps=time_steps,
                       epochs=bench.epochs, batch_size=bench.batch_size, seed=bench.seed, device=bench.device)


def measure_activation_bytes(config: TrainConfig, x: torch.Tensor, y: torch.Tensor, input_shape,
                             num_classes: int) -> tuple[int, int | None]:
    """Peak bytes saved for backward while training on one batch (and CUDA peak allocation if on CUDA)."""
    device = resolve_device(config.device)
    model = build_network(config, input_shape, num_classes).to(device)
    optimizers = make_optimizers(model, config)
    encoder = make_encoder(config.encoder, seed=config.seed)
    x, y = x.to(device), y.to(device)
    parameters = [p for group in (optimizers.binary, optimizers.full_precision)
                  for g in group.param_groups for p in g["params"]]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with SavedTensorMeter(parameters) as meter:
        BATCH_TRAINERS[config.method](model, x, y, encoder, 0, optimizers, config.time_steps, num_classes,
                                      config.mse_weight, after_backward=meter.release)
    cuda_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return meter.peak_bytes, cuda_peak


def state_bits_per_weight(optimizer: torch.optim.Optimizer, latent: bool) -> float:
    """Bits of optimizer state (plus the latent weight itself for BPTT-STE) per binary weight."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    weights = sum(p.numel() for p in params)
    bits = 0
    for p in params:
        for value in optimizer.state[p].values():
            if torch.is_tensor(value):
                bits += value.numel() * value.element_size() * 8
        if latent:
            bits += p.numel() * p.element_size() * 8
    return bits / weights


def checkpoint_bits_per_weight(path: Path, model: torch.nn.Module) -> float:
    """Bits the checkpoint spends per binary weight on the binary weights (packed bits or latent floats)."""
    document = load_checkpoint(path)
    bits = weights = 0
    for name, module in model.named_modules():
        if not isinstance(module, BINARY_LAYER_TYPES):
            continue
        weights += module.weight.numel()
        packed = document["binary"].get(f"{name}.weight")
        if packed is not None:
            bits += packed["bits"].numel() * 8
        else:
            latent = document["full_precision"][f"{name}.parametrizations.weight.original"]
            bits += latent.numel() * latent.element_size() * 8
    return bits / weights


def run_case(bench: TrainBenchConfig, method: str, time_steps: int, progress: bool) -> dict:
    config = _train_config(bench, method, time_steps)
    if bench.memory_only:
        input_shape, num_classes = (3, 32, 32), 10
        generator = torch.Generator().manual_seed(bench.seed)
        x = torch.rand(bench.batch_size, *input_shape, generator=generator)
        y = torch.randint(0, num_classes, (bench.batch_size,), generator=generator)
    else:
        split = load_dataset(config.dataset, seed=config.seed)
        input_shape, num_classes = split.input_shape, split.num_classes
        x = torch.stack([split.train[i][0] for i in range(bench.batch_size)])
        y = torch.stack([split.train[i][1] for i in range(bench.batch_size)])
    activation, cuda_peak = measure_activation_bytes(config, x, y, input_shape, num_classes)
    record = {"method": method, "time_steps": time_steps, "model": bench.model, "seed": bench.seed,
              "batch_size": bench.batch_size, "activation_bytes": activation, "cuda_peak_bytes": cuda_peak}
    if bench.memory_only:
        model = build_network(config, input_shape, num_classes)
        optimizers = make_optimizers(model, config)
        record["state_bits_per_weight"] = _state_bits_after_one_step(model, optimizers, config, x, y, num_classes)
        record.update(checkpoint_bits_per_weight=None, epoch_seconds=None, test_accuracy=None, epochs=0)
        return record
    with tempfile.TemporaryDirectory() as directory:
        run = TrainingRun.create(config, directory)
        metrics = run.fit(progress=progress, plot=False)
        record["state_bits_per_weight"] = state_bits_per_weight(run.optimizers.binary, latent=not config.online)
        record["checkpoint_bits_per_weight"] = checkpoint_bits_per_weight(Path(directory) / "checkpoint.pt",
                                                                          run.model)
    record["epoch_seconds"] = statistics.median(e["seconds"] for e in metrics["epochs"])
    record["test_accuracy"] = metrics["test_accuracy"]
    record["epochs"] = bench.epochs
    return record


def _state_bits_after_one_step(model, optimizers, config, x, y, num_classes) -> float:
    encoder = make_encoder(config.encoder, seed=config.seed)
    BATCH_TRAINERS[config.method](model, x, y, encoder, 0, optimizers, config.time_steps, num_classes,
                                  config.mse_weight)
    return state_bits_per_weight(optimizers.binary, latent=not config.online)


def run_train_bench(bench: TrainBenchConfig, progress: bool = True) -> list[dict]:
    """Run every (method, T) case, write ``train.json`` (or ``train_vgg_memory.json``) and the plots."""
    cases = [(m, t) for m in bench.methods for t in bench.time_steps]
    records: list[dict] = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(bench.threads)
    try:
        bar = tqdm(cases, desc="bench train", disable=None if progress else True)
        for method, time_steps in bar:
            bar.set_postfix(method=method, T=time_steps)
            records.append(run_case(bench, method, time_steps, progress=False))
    finally:
        torch.set_num_threads(previous_threads)
    out = Path(bench.out_dir)
    stem = "train" if bench.model == "mlp" and not bench.memory_only else f"train_{bench.model}_memory"
    atomic_write_json(out / f"{stem}.json", records)
    plot_train_bench(records, out, stem)
    print(format_table(records))
    print(summarize_targets(records))
    return records


def summarize_targets(records: list[dict]) -> str:
    """The issue's targets as ratios from this run (printed; a missed target is reported, not hidden)."""
    by = {(r["method"], r["time_steps"]): r for r in records}
    steps = sorted({r["time_steps"] for r in records})
    lines = ["targets (this run):"]
    low, high = steps[0], steps[-1]
    for method in sorted({r["method"] for r in records}):
        if (method, low) in by and (method, high) in by and by[(method, low)]["activation_bytes"]:
            ratio = by[(method, high)]["activation_bytes"] / by[(method, low)]["activation_bytes"]
            goal = ">= 10x" if method == "bptt-ste" else "<= 1.05x"
            lines.append(f"  {method}: activation memory T={high} / T={low} = {ratio:.2f}x (target {goal})")
    for method in sorted({r["method"] for r in records}):
        bits = [r["state_bits_per_weight"] for r in records if r["method"] == method]
        lines.append(f"  {method}: state bits per binary weight max {max(bits):.3f}")
    if ("tbso", 4) in by and ("bptt-ste", 4) in by and by[("tbso", 4)]["test_accuracy"] is not None:
        a, b = by[("tbso", 4)]["test_accuracy"], by[("bptt-ste", 4)]["test_accuracy"]
        lines.append(f"  accuracy at T=4: tbso {a:.4f}, bptt-ste {b:.4f} (target tbso >= 0.97 and within 0.01)")
    if ("tbso", 8) in by and ("bptt-ste", 8) in by and by[("tbso", 8)]["epoch_seconds"]:
        ratio = by[("tbso", 8)]["epoch_seconds"] / by[("bptt-ste", 8)]["epoch_seconds"]
        lines.append(f"  epoch time at T=8: tbso / bptt-ste = {ratio:.2f}x (target <= 1.3x)")
    return "\n".join(lines)


def with_overrides(bench: TrainBenchConfig, **changes) -> TrainBenchConfig:
    return replace(bench, **changes)
