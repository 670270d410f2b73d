"""A training run on disk: build everything from a :class:`TrainConfig`, train with checkpoints after
every epoch, resume exactly, and write ``checkpoint.pt``, ``metrics.json`` and ``training.png``.

Exact resume: every source of randomness is derived from (seed, epoch, batch index) — the shuffling order
of epoch e is seeded with ``seed * 7919 + e``, the rate encoder is keyed by epoch and batch — and the
checkpoint holds the model (binary weights bit-packed), both optimizers' state and the schedules, so a run
resumed after epoch k continues exactly as the uninterrupted run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from . import distributed
from ._version import __version__
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_payload,
    model_payload,
    model_shape,
    save_checkpoint,
)
from .checkpoint_checks import check_model_size, check_resumable, load_optimizer_state
from .config import TrainConfig
from .data import DatasetSplit, load_dataset, make_loaders
from .encoding import make_encoder
from .hardware_aware import HardwareAwareNetwork, evaluate_hardware
from .hardware_aware_metrics import fixed_point_metrics
from .io import atomic_write_json
from .layers import binary_layer_names
from .network import SpikingNetwork
from .options import EVENT_DATASET_NAMES
from .plots import plot_training, pyplot
from .training import (
    NonFiniteLossError,
    Optimizers,
    build_network,
    evaluate,
    make_optimizers,
    resolve_device,
    train_epoch,
)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
PLOT_NAME = "training.png"
TRAIN_EVAL_SAMPLES = 1000  # training images of the per-epoch eval-mode accuracy (train_eval_accuracy)
FIXED_POINT_SUMMARY = ("float_accuracy", "fixed_accuracy", "prediction_agreement")  # copied to metrics' top level


@dataclass
class TrainingRun:
    config: TrainConfig
    out_dir: Path
    model: SpikingNetwork
    optimizers: Optimizers
    epoch: int
    history: list[dict]
    split: DatasetSplit
    fixed_point: dict[str, Any] | None = None  # fixed_point_metrics after the last fit (not checkpointed)

    @classmethod
    def create(cls, config: TrainConfig, out_dir: str | os.PathLike) -> TrainingRun:
        torch.manual_seed(config.seed)
        split = load_dataset(config.dataset, root=config.data_root, seed=config.seed, time_steps=config.time_steps)
        check_model_size(config, split.input_shape, split.num_classes, f"the {config.model} of this run")
        model = build_network(config, split.input_shape, split.num_classes)
        device = resolve_device(config.device)
        model.to(device)
        return cls(config, Path(out_dir), model, make_optimizers(model, config), 0, [], split)

    @classmethod
    def resume(cls, out_dir: str | os.PathLike, epochs: int | None = None) -> TrainingRun:
        """Continue the run in ``out_dir`` from its checkpoint; ``epochs`` may raise the epoch budget."""
        path = Path(out_dir) / CHECKPOINT_NAME
        document = load_checkpoint(path)
        config = TrainConfig.from_dict(document["config"])
        check_resumable(document, config, path)
        if epochs is not None:
            config = TrainConfig.from_dict({**config.to_dict(), "epochs": epochs})
        scratch = build_network(config, *model_shape(document, config, path))  # checked before the data set loads
        load_model_payload(scratch, document)
        load_optimizer_state(make_optimizers(scratch, config), document["optimizers"], path)
        run = cls.create(config, out_dir)
        load_model_payload(run.model, document)
        run.model.to(resolve_device(config.device))
        load_optimizer_state(run.optimizers, document["optimizers"], path)
        run.epoch = int(document["epoch"])
        run.history = list(document["history"])
        if "rng" in document:
            try:
                torch.set_rng_state(document["rng"]["torch"])
            except RuntimeError as error:  # a state of the wrong size
                raise CheckpointError(f"checkpoint {path}: rng state is not torch's: {error}") from error
        return run

    def save(self) -> Path:
        payload = {**model_payload(self.model), "config": self.config.to_dict(), "epoch": self.epoch,
                   "optimizers": self.optimizers.state_dict(), "history": self.history,
                   "rng": {"torch": torch.get_rng_state()},
                   "model_info": {"input_shape": list(self.split.input_shape), "num_classes": self.split.num_classes}}
        return save_checkpoint(self.out_dir / CHECKPOINT_NAME, payload)

    def metrics(self, stopped: str | None = None) -> dict:
        last = self.history[-1] if self.history else {}
        return {
            "toolkit_version": __version__,
            "config": self.config.to_dict(),
            "binary_layers": binary_layer_names(self.model),
            "epochs": self.history,
            "completed_epochs": self.epoch,
            "test_accuracy": last.get("test_accuracy"),
            "train_seconds": sum(e["seconds"] for e in self.history),
            "stopped": stopped,
            **{key: (self.fixed_point or {}).get(key) for key in FIXED_POINT_SUMMARY},
            "fixed_point": self.fixed_point,
        }

    def train_eval_loader(self) -> DataLoader:
        """A fixed subset of the training split (``TRAIN_EVAL_SAMPLES`` images drawn with the run's seed, the
        same every epoch and after a resume) for ``train_eval_accuracy``: the eval-mode accuracy on training
        images, which shows the train/eval gap next to the running ``train_accuracy``."""
        generator = torch.Generator().manual_seed(self.config.seed)
        count = min(TRAIN_EVAL_SAMPLES, len(self.split.train))
        indices = torch.randperm(len(self.split.train), generator=generator)[:count].tolist()
        return DataLoader(Subset(self.split.train, indices), batch_size=self.config.batch_size)

    def integer_range(self) -> int | None:
        """For event data, the largest count per pixel and frame of the training split (one pass over its files,
        then cached): the input range of the fixed-point network, at input scale 1 (docs/fixed-point.md §10.1).
        None for inputs in [0, 1]."""
        return self.split.train.largest_count if self.config.dataset in EVENT_DATASET_NAMES else None

    def evaluate_fixed_point(self, test_loader, encoder, device: torch.device) -> dict[str, Any]:
        """Deploy the model (profile bso, the NumPy simulator) on up to ``fixed_point_samples`` test samples:
        :func:`bso_deploy.hardware_aware_metrics.fixed_point_metrics`, or ``{"skipped": why}``."""
        config = self.config
        if config.fixed_point_samples == 0:
            return {"skipped": "fixed_point_samples is 0"}
        try:
            return fixed_point_metrics(self.model, test_loader, encoder, config.time_steps, device,
                                       tuple(self.split.input_shape), hardware_aware=config.hardware_aware,
                                       max_samples=config.fixed_point_samples,
                                       integer_range=self.integer_range())
        except ValueError as error:  # e.g. inputs outside [0, 1] (normalized CIFAR-10), values out of range
            return {"skipped": f"the model cannot be deployed in profile bso: {error}"}

    def fit(self, progress: bool = True, plot: bool = True) -> dict:
        """Train the remaining epochs; after each one, save checkpoint, metrics and plot (atomically).

        Under torchrun with several processes this trains with DistributedDataParallel
        (:mod:`bso_deploy.distributed`); only rank 0 writes files. A NaN/Inf loss stops training: the last
        good checkpoint is kept, metrics.json records why, and :class:`NonFiniteLossError` is raised."""
        context = distributed.context_from_environment()
        device = resolve_device(self.config.device)
        distributed.initialize(context, device)
        try:
            return self._fit(context, device, progress and context.is_main, plot)
        finally:
            distributed.shutdown(context)

    def _fit(self, context: distributed.DistributedContext, device: torch.device, progress: bool,
             plot: bool) -> dict:
        config = self.config
        train_loader, test_loader = make_loaders(self.split, config.batch_size, seed=config.seed,
                                                 num_workers=config.num_workers)
        sampler = None
        stepper = None
        if context.enabled:
            sampler = DistributedSampler(self.split.train, num_replicas=context.world_size, rank=context.rank,
                                         shuffle=True, seed=config.seed, drop_last=True)
            train_loader = DataLoader(self.split.train, batch_size=config.batch_size, sampler=sampler,
                                      num_workers=config.num_workers, drop_last=True)
            stepper = distributed.DistributedStepper(self.model, device)
        encoder = make_encoder(config.encoder, seed=config.seed)
        train_eval_loader = self.train_eval_loader()
        if context.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if plot:
                pyplot()  # without matplotlib (the plots extra), fail before training, not after an epoch
        num_classes = self.split.num_classes
        if config.hardware_aware and context.enabled:
            raise ValueError("--hardware-aware does not run under torchrun yet; train it in one process")
        hardware = None  # the integer forward, created when the first hardware-aware epoch starts
        while self.epoch < config.epochs:
            hardware_aware = config.is_hardware_aware_epoch(self.epoch)
            if hardware_aware and hardware is None:
                hardware = HardwareAwareNetwork(self.model, config.time_steps, tuple(self.split.input_shape),
                                                integer_range=self.integer_range())
            if sampler is not None:
                sampler.set_epoch(self.epoch)
            else:
                train_loader.generator.manual_seed(config.seed * 7919 + self.epoch)
            start = time.perf_counter()
            try:
                record = train_epoch(self.model, train_loader, encoder, self.optimizers, config, num_classes,
                                     self.epoch, device, progress, stepper=hardware if hardware_aware else stepper)
            except NonFiniteLossError as error:
                message = (f"training stopped in epoch {self.epoch + 1}: {error}. The last good checkpoint "
                           f"(after epoch {self.epoch}) is kept in {self.out_dir / CHECKPOINT_NAME}; lower the "
                           "learning rate or check the input data for NaN/Inf.")
                if context.is_main:
                    atomic_write_json(self.out_dir / METRICS_NAME, self.metrics(stopped=message))
                raise NonFiniteLossError(message) from error
            distributed.synchronize_buffers(context, self.model)
            distributed.assert_replicas_identical(context, self.model, self.optimizers)
            record["seconds"] = time.perf_counter() - start
            record["test_accuracy"] = evaluate(self.model, test_loader, encoder, config.time_steps, device)
            record["train_eval_accuracy"] = evaluate(self.model, train_eval_loader, encoder, config.time_steps, device)
            if hardware_aware:  # test_accuracy: the integer forward, which the deployment runs
                record["hardware_aware"] = True
                record["float_test_accuracy"] = record["test_accuracy"]
                record["test_accuracy"] = evaluate_hardware(hardware, test_loader, encoder, config.time_steps, device)
            record["epoch"] = self.epoch + 1
            if context.enabled:
                record["world_size"] = context.world_size
            self.epoch += 1
            self.optimizers.end_epoch(self.epoch)
            self.history.append(record)
            if context.is_main:
                self.save()
                atomic_write_json(self.out_dir / METRICS_NAME, self.metrics())
                if plot:
                    plot_training(self.history, self.out_dir / PLOT_NAME,
                                  title=f"{config.method} on {config.dataset}")
            distributed.barrier(context)
            if progress:
                print(f"epoch {self.epoch:3d}/{config.epochs}  loss {record['loss']:.4f}  "
                      f"train {record['train_accuracy']:.4f} (eval mode {record['train_eval_accuracy']:.4f})  "
                      f"test {record['test_accuracy']:.4f}  "
                      f"({record['seconds']:.1f} s){'  [integer forward]' if hardware_aware else ''}", flush=True)
        if context.is_main:
            self.fixed_point = self.evaluate_fixed_point(test_loader, encoder, device)
            atomic_write_json(self.out_dir / METRICS_NAME, self.metrics())
            if progress and "skipped" not in self.fixed_point:
                fixed = self.fixed_point
                print(f"fixed point (profile bso, simulator, {fixed['samples']} test samples): accuracy "
                      f"{fixed['fixed_accuracy']:.4f}, float {fixed['float_accuracy']:.4f}, prediction agreement "
                      f"{fixed['prediction_agreement']:.4f}", flush=True)
        return self.metrics()
