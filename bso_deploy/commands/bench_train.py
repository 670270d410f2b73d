"""``bso-deploy bench train``: :func:`bso_deploy.bench.train.run_train_bench` for the parsed options."""

from __future__ import annotations

import argparse

from ..bench.train import TrainBenchConfig, run_train_bench


def bench_train_command(args: argparse.Namespace) -> int:
    bench = TrainBenchConfig(methods=tuple(m for m in args.methods.split(",") if m),
                             time_steps=tuple(int(t) for t in args.time_steps.split(",") if t), epochs=args.epochs,
                             model=args.model, seed=args.seed, device=args.device, out_dir=args.out,
                             threads=args.threads, memory_only=args.model == "vgg")
    run_train_bench(bench, progress=not args.no_progress)
    return 0
