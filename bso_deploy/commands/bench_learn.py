"""``bso-deploy bench learn``: :func:`bso_deploy.bench.learn.run_learn_bench` for the parsed options."""

from __future__ import annotations

import argparse

from ..bench.learn import LearnBenchConfig, run_learn_bench
from ..bench.learn_table import DEFAULT_LEARNERS, DEFAULT_SCENARIOS


def _names(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated names; None: ``default``."""
    return default if text is None else tuple(piece.strip() for piece in text.split(",") if piece.strip())


def bench_learn_command(args: argparse.Namespace) -> int:
    config = LearnBenchConfig(backends=tuple(b for b in args.backends.split(",") if b), samples=args.samples,
                              time_steps=args.time_steps, hidden=args.hidden, variant=args.variant, seed=args.seed,
                              threads=args.threads, out_dir=args.out,
                              scenarios=_names(args.scenarios, DEFAULT_SCENARIOS),
                              learners=_names(args.learners, DEFAULT_LEARNERS), table_samples=args.table_samples)
    run_learn_bench(config, progress=not args.no_progress)
    return 0
