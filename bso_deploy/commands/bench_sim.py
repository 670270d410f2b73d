"""``bso-deploy bench sim``: :func:`bso_deploy.bench.sim.run_sim_bench` for the parsed options."""

from __future__ import annotations

import argparse

from ..bench.sim import SimBenchConfig, run_sim_bench


def bench_sim_command(args: argparse.Namespace) -> int:
    config = SimBenchConfig(time_steps=args.time_steps, batch=args.batch, repeats=args.repeats,
                            lava_streamed_samples=args.lava_samples, lava_per_sample_runs=args.lava_fresh_runs,
                            epochs=args.epochs, seed=args.seed, threads=args.threads, out_dir=args.out,
                            lava_copies=args.lava_copies)
    lava_deploy = None
    if not args.no_lava_deploy:
        # Lava is optional and slow to import: only this row needs it
        from ..hardware.lava.deploy import deploy as lava_deploy
    run_sim_bench(config, progress=not args.no_progress, lava_deploy=lava_deploy)
    return 0
