"""``bso-deploy bench learn``: :func:`bso_deploy.bench.learn.run_learn_bench` for the parsed options."""

from __future__ import annotations

import argparse

from ..bench.learn import LearnBenchConfig, run_learn_bench


def bench_learn_command(args: argparse.Namespace) -> int:
    config = LearnBenchConfig(backends=tuple(b for b in args.backends.split(",") if b), samples=args.samples,
                              time_steps=args.time_steps, hidden=args.hidden, variant=args.variant, seed=args.seed,
                              threads=args.threads, out_dir=args.out)
    run_learn_bench(config, progress=not args.no_progress)
    return 0
