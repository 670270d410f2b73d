"""``bso-deploy train``: a :class:`~bso_deploy.config.TrainConfig` from the parsed options, a
:class:`~bso_deploy.run.TrainingRun` that fits it (or resumes one), one JSON line of results. The run directory
is locked (:class:`~bso_deploy.run_lock.RunLock`) from before the run is built until its last file is written, so
a second ``train`` on the same ``--out`` fails at once (under torchrun, rank 0 holds the lock)."""

from __future__ import annotations

import argparse
import json
import os
from contextlib import nullcontext

from ..cli_train_parsers import comma_separated_ints
from ..config import TrainConfig
from ..distributed import context_from_environment
from ..run import TrainingRun
from ..run_lock import RunLock


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of a new run's options (validated by the config)."""
    return TrainConfig(
        dataset=args.dataset, method=args.method, model=args.model, time_steps=args.time_steps,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
        binary=args.binary, hidden=comma_separated_ints(args.hidden), cnn=args.cnn, batchnorm=args.batchnorm,
        encoder=args.encoder, lr_schedule=args.lr_schedule,
        threshold=args.threshold, momentum=args.momentum, lr=args.lr, ste_lr=args.ste_lr,
        fp_optimizer=args.fp_optimizer, decay_every=args.decay_every, decay_factor=args.decay_factor,
        reset=args.reset, data_root=args.data_root, num_workers=args.num_workers,
        hardware_aware=args.hardware_aware, hardware_aware_epochs=args.hardware_aware_epochs,
        fixed_point_samples=args.fixed_point_samples)


def train_from_args(args: argparse.Namespace) -> TrainingRun:
    """What ``bso-deploy train`` does; returns the finished :class:`bso_deploy.run.TrainingRun`. The options are
    checked before ``--out`` is locked (a bad option leaves no directory behind); a resumed run's directory must
    exist. Under torchrun only rank 0 takes the lock (the other ranks write nothing)."""
    config = None if args.resume else config_from_args(args)
    lock = RunLock(args.out, create=not args.resume) if context_from_environment().is_main else nullcontext()
    with lock:
        run = TrainingRun.resume(args.out, epochs=args.epochs) if config is None else TrainingRun.create(config,
                                                                                                        args.out)
        run.fit(progress=not args.no_progress)
    return run


def train_command(args: argparse.Namespace) -> int:
    run = train_from_args(args)
    metrics = run.metrics()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    print(json.dumps({"out": str(run.out_dir), "test_accuracy": metrics["test_accuracy"],
                      "fixed_accuracy": metrics["fixed_accuracy"],
                      "prediction_agreement": metrics["prediction_agreement"],
                      "train_seconds": round(metrics["train_seconds"], 2)}))
    return 0
