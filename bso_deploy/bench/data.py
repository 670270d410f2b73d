"""``bso-deploy bench data``: real data at real scale (issue 13's benchmark). For each model (MLP, CNN) and
training method (T-BSO, BSO, BPTT-STE) on one data set, in one run:

- training: a :class:`~bso_deploy.run.TrainingRun` of ``epochs`` epochs at ``time_steps`` steps (cached under
  ``cache_dir`` by the hash of its :class:`~bso_deploy.config.TrainConfig`; an interrupted run resumes from its
  last epoch's checkpoint); ``test_accuracy`` is the eval-mode accuracy after the last epoch,
  ``epoch_seconds`` the median epoch wall time and ``train_samples_per_second`` the samples of an epoch (full
  batches) over it;
- deployment on every test sample: the model compiled in profile bso
  (:func:`bso_deploy.hardware_aware.compile_model`) on the NumPy simulator (``fixed_accuracy``) against the
  float torch model in eval mode on the same encoded batches (``float_accuracy``); ``prediction_agreement``
  is the fraction of equal predictions, ``sim_seconds`` and ``float_torch_seconds`` the wall time of each
  over the whole test set (cached in the run folder, ``deployment.json``);
- training cost on ``throughput_batches + 1`` training batches of fresh networks (the first batch is the
  warm-up and the one memory is measured on): ``activation_bytes[T]`` for T in :data:`MEMORY_TIME_STEPS`
  (bytes saved for backward, exact: :class:`~bso_deploy.memory.SavedTensorMeter`; the peak over the per-step
  graphs for online methods, the unrolled graph for BPTT) and ``samples_per_second_T8``
  (:data:`THROUGHPUT_TIME_STEPS`); the same for snnTorch's BPTT on the same float architecture
  (:mod:`.snntorch_baseline`), method ``snntorch-bptt``. Every method of a model and the baseline are timed
  interleaved over ``throughput_rounds`` rounds (:mod:`.data_cost`): ``samples_per_second_T8`` is the median
  over rounds (``_per_round`` the figures), ``throughput_ratio_T8`` the median per-round ratio to snnTorch,
  which the throughput target reads.

``bench/data_<dataset>.json``: ``rows``, ``baselines`` (snnTorch), ``targets`` (:data:`.data_report.TARGETS`
each with value, threshold and ``met``), ``settings``, ``command``, ``seconds``; ``bench/data_<dataset>.png``.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset, TensorDataset
from tqdm.auto import tqdm

from bso_deploy.hardware.backends import run_fixed

from ..config import TrainConfig
from ..data import DatasetSplit, load_dataset, make_loaders
from ..encoding import make_encoder
from ..hardware_aware import compile_model
from ..io import atomic_write_json
from ..options import DATA_BENCH_DATASETS, DATA_BENCH_METHODS, DATA_BENCH_MODELS, LR_SCHEDULES
from ..run import CHECKPOINT_NAME, TrainingRun
from ..training import BATCH_TRAINERS, build_network, make_optimizers, resolve_device
from .data_cost import activation_bytes, record_throughput
from .data_report import evaluate_targets, format_data_table, plot_data_bench
from .snntorch_baseline import BatchStep, snntorch_trainer

__all__ = ["DEPLOYMENT_BATCH", "MEMORY_TIME_STEPS", "THROUGHPUT_TIME_STEPS", "DataBenchConfig", "run_data_bench",
           "run_from_args"]

THROUGHPUT_TIME_STEPS = 8  # T of the throughput comparison with snnTorch (the target)
MEMORY_TIME_STEPS = (4, 8)  # T at which activation memory is measured: flat in T for online methods
DEPLOYMENT_NAME = "deployment.json"
DEPLOYMENT_BATCH = 500  # test samples per simulator and float call
BASELINE_METHOD = "snntorch-bptt"
DIGITS_IMAGE = (1, 8, 8)  # the digits' 64 features as the image they are, for the CNN


@dataclass(frozen=True)
class DataBenchConfig:
    dataset: str = "fashion-mnist"
    models: tuple[str, ...] = field(default=DATA_BENCH_MODELS)
    methods: tuple[str, ...] = field(default=DATA_BENCH_METHODS)
    epochs: int = 10
    cnn_epochs: int | None = None  # None: ``epochs``
    cnn_train_samples: int | None = None  # the CNN trains on the first N training samples (None: all)
    cnn_method_epochs: tuple[tuple[str, int], ...] = ()  # (method, epochs): the CNN's epochs of these methods
    time_steps: int = 4
    batch_size: int = 128
    lr_schedule: str = "cosine"
    seed: int = 0
    throughput_batches: int = 10  # timed training batches per throughput figure (after one warm-up batch)
    throughput_rounds: int = 3  # interleaved rounds of every trainer (median); quick: 1
    threads: int = 1
    data_root: str | None = None
    quick: bool = False  # 1 epoch, 2 timed batches: a test of the benchmark, not figures
    out_dir: str = "bench"
    cache_dir: str = "runs/bench-data-cache"

    def __post_init__(self) -> None:
        if self.dataset not in DATA_BENCH_DATASETS:
            raise ValueError(f"unknown data set {self.dataset!r} for bench data; valid: "
                             f"{', '.join(DATA_BENCH_DATASETS)}")
        for name, valid in (("models", DATA_BENCH_MODELS), ("methods", DATA_BENCH_METHODS)):
            values = tuple(getattr(self, name))
            if not values or any(v not in valid for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names among {', '.join(valid)}, got {values!r}")
            object.__setattr__(self, name, values)
        for name in ("epochs", "time_steps", "batch_size", "throughput_batches", "throughput_rounds", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
        for name in ("cnn_epochs", "cnn_train_samples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        pairs = tuple(tuple(pair) for pair in self.cnn_method_epochs)
        methods = [method for method, _ in pairs]
        if (any(len(pair) != 2 for pair in pairs) or any(m not in DATA_BENCH_METHODS for m in methods)
                or len(set(methods)) != len(methods)
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for _, n in pairs)):
            raise ValueError(f"cnn_method_epochs must be distinct (method, epochs >= 1) pairs with methods among "
                             f"{', '.join(DATA_BENCH_METHODS)}, got {self.cnn_method_epochs!r}")
        object.__setattr__(self, "cnn_method_epochs", pairs)

    def epochs_of(self, model: str, method: str | None = None) -> int:
        """Epochs of (model, method): 1 when quick; the CNN's ``cnn_method_epochs`` entry of ``method``, else
        ``cnn_epochs``, else ``epochs``."""
        if self.quick:
            return 1
        if model == "cnn" and method in dict(self.cnn_method_epochs):
            return dict(self.cnn_method_epochs)[method]
        return self.cnn_epochs if model == "cnn" and self.cnn_epochs is not None else self.epochs

    def train_samples_of(self, model: str) -> int | None:
        return self.cnn_train_samples if model == "cnn" else None

    @property
    def rounds(self) -> int:
        return 1 if self.quick else self.throughput_rounds

    @property
    def timed_batches(self) -> int:
        return 2 if self.quick else self.throughput_batches

    def train_config(self, model: str, method: str, time_steps: int | None = None) -> TrainConfig:
        return TrainConfig(dataset=self.dataset, model=model, method=method,
                           time_steps=self.time_steps if time_steps is None else time_steps,
                           epochs=self.epochs_of(model, method), batch_size=self.batch_size, seed=self.seed,
                           lr_schedule=self.lr_schedule,
                           data_root=self.data_root, fixed_point_samples=0)  # deployment measured here


# ---------------------------------------------------------------- training (cached)

def run_folder(config: DataBenchConfig, train: TrainConfig) -> Path:
    """The cache folder of one trained model: data set, model, method and a hash of its TrainConfig (all but
    ``data_root``, which says where the files are, not what is trained) and of its training subset."""
    identity = {key: value for key, value in train.to_dict().items() if key != "data_root"}
    if config.train_samples_of(train.model) is not None:
        identity["train_samples"] = config.train_samples_of(train.model)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return Path(config.cache_dir) / f"{train.dataset}-{train.model}-{train.method}-{digest}"


def digits_images(split: DatasetSplit) -> DatasetSplit:
    """The digits split with each flat (64,) sample as a (1, 8, 8) image (for the CNN)."""
    train, test = (TensorDataset(*(tensor.reshape(-1, *DIGITS_IMAGE) if index == 0 else tensor
                                   for index, tensor in enumerate(part.tensors))) for part in (split.train, split.test))
    return DatasetSplit(train=train, test=test, input_shape=DIGITS_IMAGE, num_classes=split.num_classes,
                        name=split.name)


class DigitsImageRun(TrainingRun):
    """A training run on :func:`digits_images` (``resume`` builds through this ``create`` too)."""

    @classmethod
    def create(cls, config: TrainConfig, out_dir) -> DigitsImageRun:
        torch.manual_seed(config.seed)
        split = digits_images(load_dataset(config.dataset, root=config.data_root, seed=config.seed))
        model = build_network(config, split.input_shape, split.num_classes).to(resolve_device(config.device))
        return cls(config, Path(out_dir), model, make_optimizers(model, config), 0, [], split)


def trained_run(train: TrainConfig, folder: Path, progress: bool,
                train_samples: int | None = None) -> tuple[TrainingRun, bool]:
    """The trained run in ``folder``: loaded if complete, resumed if interrupted, else trained from scratch,
    on the first ``train_samples`` training samples (None: all). Returns (run, whether every epoch came from the
    cache). The CNN on digits trains on :func:`digits_images`."""
    run_class = DigitsImageRun if (train.dataset, train.model) == ("digits", "cnn") else TrainingRun
    resuming = (folder / CHECKPOINT_NAME).is_file()
    run = run_class.resume(folder) if resuming else run_class.create(train, folder)
    if train_samples is not None and train_samples < len(run.split.train):
        run.split = replace(run.split, train=Subset(run.split.train, range(train_samples)))
    if resuming and run.epoch >= train.epochs:
        return run, True
    run.fit(progress=progress, plot=False)
    return run, False


# ---------------------------------------------------------------- deployment

@torch.no_grad()
def measure_deployment(run: TrainingRun) -> dict[str, Any]:
    """The run's model on the whole test set: float torch (eval mode) and the simulator of its profile-bso
    compilation, on the same encoded batches; accuracies, agreement and the wall time of each."""
    config, model = run.config, run.model
    model.eval()
    fx_net, _ = compile_model(model, config.time_steps, tuple(run.split.input_shape))
    _, test_loader = make_loaders(run.split, DEPLOYMENT_BATCH, seed=config.seed)
    encoder = make_encoder(config.encoder, seed=config.seed)
    truth, float_pred, fixed_pred = [], [], []
    float_seconds = sim_seconds = 0.0
    for index, (x, y) in enumerate(test_loader):
        inputs = torch.stack([encoder(x, t, (1 << 40) + index) for t in range(config.time_steps)])
        start = time.perf_counter()
        model.reset_state()
        float_pred.append(sum(model.step(x_t) for x_t in inputs).argmax(1).numpy())
        float_seconds += time.perf_counter() - start
        start = time.perf_counter()
        fixed_pred.append(run_fixed(fx_net, "sim", inputs.numpy()).predictions)
        sim_seconds += time.perf_counter() - start
        truth.append(y.numpy())
    labels, floats, fixed = (np.concatenate(a) for a in (truth, float_pred, fixed_pred))
    return {"test_samples": int(labels.size), "float_accuracy": float(np.mean(floats == labels)),
            "fixed_accuracy": float(np.mean(fixed == labels)), "prediction_agreement": float(np.mean(floats == fixed)),
            "float_torch_seconds": float_seconds, "sim_seconds": sim_seconds, "profile": fx_net.profile,
            "epoch": run.epoch}


def cached_deployment(run: TrainingRun, folder: Path) -> tuple[dict[str, Any], bool]:
    """:func:`measure_deployment`, kept in ``folder/deployment.json`` for the checkpoint's epoch. A network that
    does not compile or run keeps its row with the error (``error``)."""
    path = folder / DEPLOYMENT_NAME
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("epoch") == run.epoch and cached.get("error") is None:
            return cached, True
    try:
        result = {**measure_deployment(run), "error": None}
    except (ValueError, TypeError, NotImplementedError) as error:
        return {"error": f"{type(error).__name__}: {error}", "epoch": run.epoch}, False
    atomic_write_json(path, result)
    return result, False


# ---------------------------------------------------------------- training cost

def bso_trainer(config: DataBenchConfig, model_name: str, method: str, split,
                time_steps: int) -> tuple[BatchStep, list]:
    """A fresh network and optimizers of (model, method) at ``time_steps``: its batch step and its parameters."""
    train = config.train_config(model_name, method, time_steps)
    num_classes = split.num_classes
    model = build_network(train, tuple(split.input_shape), num_classes)
    model.train()
    optimizers = make_optimizers(model, train)
    encoder = make_encoder(train.encoder, seed=train.seed)

    def step(x, y, key, after_backward=None) -> None:
        BATCH_TRAINERS[train.method](model, x, y, encoder, key, optimizers, train.time_steps, num_classes,
                                     train.mse_weight, after_backward=after_backward)

    parameters = [p for group in (optimizers.binary, optimizers.full_precision)
                  for g in group.param_groups for p in g["params"]]
    return step, parameters


def activation_memory(make_trainer: Callable[[int], tuple[BatchStep, list]], batch) -> dict[str, int]:
    """``activation_bytes`` on ``batch`` per T of :data:`MEMORY_TIME_STEPS` of the trainers ``make_trainer(T)``
    builds."""
    return {str(steps): activation_bytes(*make_trainer(steps), batch) for steps in MEMORY_TIME_STEPS}


def training_batches(config: DataBenchConfig, split) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader, _ = make_loaders(split, config.batch_size, seed=config.seed)
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) > config.timed_batches:
            break
    return batches


# ---------------------------------------------------------------- the benchmark

def model_rows(config: DataBenchConfig, model: str, bar) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of every method on ``model`` and the snnTorch baseline on its float architecture."""
    rows = []
    split = None
    batches: list | None = None  # the same seeded training batches for every method and the baseline
    for method in config.methods:
        train = config.train_config(model, method)
        folder = run_folder(config, train)
        bar.set_postfix(model=model, method=method, stage="train")
        run, cached = trained_run(train, folder, progress=False, train_samples=config.train_samples_of(model))
        split = run.split
        bar.set_postfix(model=model, method=method, stage="deploy")
        deployment, deployment_cached = cached_deployment(run, folder)
        epoch_seconds = statistics.median(e["seconds"] for e in run.history)
        train_samples = len(split.train) // train.batch_size * train.batch_size
        row = {"model": model, "method": method, "time_steps": train.time_steps, "epochs": run.epoch,
               "batch_size": train.batch_size, "train_samples": train_samples,
               "test_accuracy": run.history[-1]["test_accuracy"],
               "test_accuracy_per_epoch": [e["test_accuracy"] for e in run.history],
               "train_accuracy": run.history[-1]["train_accuracy"], "epoch_seconds": epoch_seconds,
               "train_samples_per_second": train_samples / epoch_seconds,
               **{k: v for k, v in deployment.items() if k != "epoch"},
               "cached": {"training": cached, "deployment": deployment_cached}, "run_folder": str(folder)}
        bar.set_postfix(model=model, method=method, stage="memory")
        batches = batches or training_batches(config, split)
        row["activation_bytes"] = activation_memory(partial(bso_trainer, config, model, method, split), batches[0])
        row["peak_training_activation_bytes"] = row["activation_bytes"].get(str(train.time_steps))
        rows.append(row)
        bar.update()
    assert split is not None  # methods is never empty (validated)
    reference = build_network(config.train_config(model, "tbso"), tuple(split.input_shape), split.num_classes)
    train = config.train_config(model, "tbso")
    encoder = make_encoder(train.encoder, seed=config.seed)
    bar.set_postfix(model=model, method=BASELINE_METHOD, stage="memory")

    def baseline_trainer(steps: int):
        return snntorch_trainer(reference, encoder, steps, split.num_classes, train.mse_weight)

    assert batches is not None
    baseline = {"model": model, "method": BASELINE_METHOD, "framework": "snntorch", "batch_size": config.batch_size,
                "activation_bytes": activation_memory(baseline_trainer, batches[0])}
    bar.set_postfix(model=model, stage="throughput")
    steps = {row["method"]: bso_trainer(config, model, row["method"], split, THROUGHPUT_TIME_STEPS)[0]
             for row in rows}
    steps[BASELINE_METHOD] = baseline_trainer(THROUGHPUT_TIME_STEPS)[0]
    record_throughput({**{row["method"]: row for row in rows}, BASELINE_METHOD: baseline}, steps, batches,
                      config.rounds, BASELINE_METHOD, THROUGHPUT_TIME_STEPS)
    return rows, baseline


def settings(config: DataBenchConfig) -> dict[str, Any]:
    values = asdict(config)
    values.update(epochs_per_model={m: config.epochs_of(m) for m in config.models},
                  epochs_per_row={f"{m}/{k}": config.epochs_of(m, k) for m in config.models for k in config.methods},
                  memory_time_steps=list(MEMORY_TIME_STEPS), throughput_time_steps=THROUGHPUT_TIME_STEPS,
                  timed_batches=config.timed_batches, rounds=config.rounds, torch_version=torch.__version__)
    return values


def command_line(config: DataBenchConfig) -> str:
    """The ``bso-deploy bench data`` command that reproduces ``config`` (every option spelled out)."""
    parts = ["bso-deploy", "bench", "data", "--dataset", config.dataset, "--models", ",".join(config.models),
             "--methods", ",".join(config.methods), "--epochs", str(config.epochs), "--time-steps",
             str(config.time_steps), "--batch-size", str(config.batch_size), "--lr-schedule", config.lr_schedule,
             "--seed", str(config.seed),
             "--throughput-batches", str(config.throughput_batches),
             "--throughput-rounds", str(config.throughput_rounds), "--threads", str(config.threads),
             "--out", config.out_dir, "--cache", config.cache_dir]
    if config.cnn_epochs is not None:
        parts += ["--cnn-epochs", str(config.cnn_epochs)]
    if config.cnn_train_samples is not None:
        parts += ["--cnn-train-samples", str(config.cnn_train_samples)]
    if config.cnn_method_epochs:
        parts += ["--cnn-method-epochs", ",".join(f"{m}={n}" for m, n in config.cnn_method_epochs)]
    if config.data_root is not None:
        parts += ["--data-root", config.data_root]
    return " ".join(parts + (["--quick"] if config.quick else []))


def run_data_bench(config: DataBenchConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or load), deploy and measure every (model, method); print the table, write the JSON and PNG."""
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    rows: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    try:
        with tqdm(total=len(config.models) * len(config.methods), desc=f"bench data {config.dataset}",
                  disable=None if progress else True) as bar:
            for model in config.models:
                model_results, baseline = model_rows(config, model, bar)
                rows += model_results
                baselines.append(baseline)
    finally:
        torch.set_num_threads(previous_threads)
    report = {"dataset": config.dataset, "rows": rows, "baselines": baselines,
              "targets": evaluate_targets(rows, baselines, THROUGHPUT_TIME_STEPS, MEMORY_TIME_STEPS),
              "settings": settings(config), "command": command_line(config), "seconds": time.perf_counter() - start}
    out = Path(config.out_dir)
    atomic_write_json(out / f"data_{config.dataset}.json", report)
    plot_data_bench(report, out / f"data_{config.dataset}.png")
    print(format_data_table(report))
    return report


def run_from_args(args) -> int:
    config = DataBenchConfig(dataset=args.dataset, models=tuple(m for m in args.models.split(",") if m),
                             methods=tuple(m for m in args.methods.split(",") if m), epochs=args.epochs,
                             cnn_epochs=args.cnn_epochs, cnn_train_samples=args.cnn_train_samples,
                             cnn_method_epochs=args.cnn_method_epochs,
                             time_steps=args.time_steps, batch_size=args.batch_size,
                             lr_schedule=args.lr_schedule,
                             seed=args.seed, throughput_batches=args.throughput_batches,
                             throughput_rounds=args.throughput_rounds, threads=args.threads,
                             data_root=args.data_root, quick=args.quick, out_dir=args.out, cache_dir=args.cache)
    run_data_bench(config, progress=not args.no_progress)
    return 0
