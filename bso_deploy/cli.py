"""The ``bso-deploy`` command line: parses arguments into config objects and calls library functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from .config import DATASET_NAMES, DEVICES, ENCODER_NAMES, METHODS, TrainConfig
from .deploy_cli import add_compile_parser, add_parity_parser, add_run_parser
from .models import BINARY_CHOICES, MODELS


def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a binary SNN online with T-BSO, BSO or Bop",
                                   description="Online (OTTT-style) training of a binary spiking network.")
    defaults = TrainConfig()
    parser.add_argument("--dataset", default=defaults.dataset, help=f"one of {', '.join(DATASET_NAMES)}")
    parser.add_argument("--method", default=defaults.method, help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--model", default=defaults.model, help=f"one of {', '.join(MODELS)}")
    parser.add_argument("--time-steps", type=int, default=defaults.time_steps)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default=defaults.device, help=f"{', '.join(DEVICES)} or cuda:N")
    parser.add_argument("--binary", default=defaults.binary, help=f"binary layers: {', '.join(BINARY_CHOICES)}")
    parser.add_argument("--hidden", default=",".join(map(str, defaults.hidden)),
                        help="MLP hidden sizes, comma separated")
    parser.add_argument("--encoder", default=defaults.encoder, help=f"one of {', '.join(ENCODER_NAMES)}")
    parser.add_argument("--threshold", type=float, default=None, help="flip threshold (method default if unset)")
    parser.add_argument("--momentum", type=float, default=defaults.momentum)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="learning rate of full-precision params")
    parser.add_argument("--ste-lr", type=float, default=defaults.ste_lr, help="Adam rate of bptt-ste latent weights")
    parser.add_argument("--fp-optimizer", default=defaults.fp_optimizer, help="sgd or adam")
    parser.add_argument("--decay-every", type=int, default=defaults.decay_every,
                        help="multiply threshold and 1-momentum by --decay-factor every N epochs (0: never)")
    parser.add_argument("--decay-factor", type=float, default=defaults.decay_factor)
    parser.add_argument("--reset", default=defaults.reset, help="LIF reset: subtract or zero")
    parser.add_argument("--data-root", default=None, help="directory of local MNIST/CIFAR files")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--hardware-aware", action="store_true",
                        help="run the last epochs' forward pass on the deployed integer network (profile bso)")
    parser.add_argument("--hardware-aware-epochs", type=int, default=defaults.hardware_aware_epochs,
                        help="how many final epochs are hardware-aware (with --hardware-aware)")
    parser.add_argument("--fixed-point-samples", type=int, default=defaults.fixed_point_samples,
                        help="test samples for the fixed-point evaluation after training (0: none)")
    parser.add_argument("--out", required=True, help="run directory (checkpoint.pt, metrics.json, training.png)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_train)


def train_from_args(args: argparse.Namespace):
    """What ``bso-deploy train`` does; returns the finished :class:`bso_deploy.run.TrainingRun`."""
    from .run import TrainingRun

    if args.resume:
        run = TrainingRun.resume(args.out, epochs=args.epochs)
    else:
        config = TrainConfig(
            dataset=args.dataset, method=args.method, model=args.model, time_steps=args.time_steps,
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
            binary=args.binary, hidden=tuple(int(v) for v in args.hidden.split(",") if v.strip()),
            encoder=args.encoder, threshold=args.threshold, momentum=args.momentum, lr=args.lr, ste_lr=args.ste_lr,
            fp_optimizer=args.fp_optimizer, decay_every=args.decay_every, decay_factor=args.decay_factor,
            reset=args.reset, data_root=args.data_root, num_workers=args.num_workers,
            hardware_aware=args.hardware_aware, hardware_aware_epochs=args.hardware_aware_epochs,
            fixed_point_samples=args.fixed_point_samples)
        run = TrainingRun.create(config, args.out)
    run.fit(progress=not args.no_progress)
    return run


def _train(args: argparse.Namespace) -> int:
    run = train_from_args(args)
    metrics = run.metrics()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(json.dumps({"out": str(run.out_dir), "test_accuracy": metrics["test_accuracy"],
                      "fixed_accuracy": metrics["fixed_accuracy"],
                      "prediction_agreement": metrics["prediction_agreement"],
                      "train_seconds": round(metrics["train_seconds"], 2)}))
    return 0


def _add_bench_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that print a table and write JSON under bench/")
    kinds = parser.add_subparsers(dest="bench", required=True)
    train = kinds.add_parser("train", help="memory, state, checkpoint size, speed and accuracy per method and T")
    train.add_argument("--methods", default="tbso,bso,bop,bptt-ste")
    train.add_argument("--time-steps", default="2,4,8,16,32")
    train.add_argument("--epochs", type=int, default=12, help="training budget per case (accuracy)")
    train.add_argument("--model", default="mlp", help="mlp (digits, full benchmark) or vgg (random 32x32, memory)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu")
    train.add_argument("--out", default="bench", help="output directory")
    train.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(handler=_bench_train)
    sim = kinds.add_parser("sim", help="samples per second: simulator, torch reference, Lava built-ins")
    sim.add_argument("--time-steps", type=int, default=8)
    sim.add_argument("--batch", type=int, default=256)
    sim.add_argument("--repeats", type=int, default=9, help="timed calls per in-process row; the fastest counts")
    sim.add_argument("--lava-samples", type=int, default=20, help="samples streamed through one Lava network")
    sim.add_argument("--lava-fresh-runs", type=int, default=3, help="samples run with a fresh Lava build each")
    sim.add_argument("--epochs", type=int, default=3, help="T-BSO training epochs of the benchmarked bso network")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--threads", type=int, default=1, help="torch and NumPy BLAS threads for every row")
    sim.add_argument("--out", default="bench")
    sim.add_argument("--lava-copies", type=int, default=16,
                     help="also time our Lava processes with this many network copies per Lava step (1: skip)")
    sim.add_argument("--no-lava-deploy", action="store_true",
                     help="skip the row of our own Lava processes (hardware/lava/deploy.py) on the bso network")
    sim.add_argument("--no-progress", action="store_true")
    sim.set_defaults(handler=_bench_sim)
    _add_bench_learn_parser(kinds)
    from .bench.deploy import add_deploy_arguments  # the options live with the benchmark (bench/deploy.py)
    add_deploy_arguments(kinds.add_parser("deploy", help="networks made by snnTorch, Sinabs, lava-dl: accuracy and "
                                          "parity deployed")).set_defaults(handler=_bench_deploy)


def _bench_train(args: argparse.Namespace) -> int:
    from .bench.train import TrainBenchConfig, run_train_bench

    bench = TrainBenchConfig(methods=tuple(m for m in args.methods.split(",") if m),
                             time_steps=tuple(int(t) for t in args.time_steps.split(",") if t), epochs=args.epochs,
                             model=args.model, seed=args.seed, device=args.device, out_dir=args.out,
                             threads=args.threads, memory_only=args.model == "vgg")
    run_train_bench(bench, progress=not args.no_progress)
    return 0


EXPORT_FORMATS = ("nir", "netx", "onnx")


def _add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained checkpoint (NIR, lava-dl netx, ONNX)")
    parser.add_argument("checkpoint", help="checkpoint.pt written by `bso-deploy train`")
    parser.add_argument("--format", default="nir", help=f"one of {', '.join(EXPORT_FORMATS)} (docs/export.md)")
    parser.add_argument("--out", required=True, help="output file (written atomically)")
    parser.add_argument("--dt", type=float, default=1e-3, help="time step in seconds recorded in the NIR graph")
    parser.add_argument("--semantics", default="float", help="onnx: float (the trained model's step) or fixed "
                        "(the integer network of docs/fixed-point.md)")
    parser.add_argument("--profile", default="bso", help="onnx --semantics fixed: fixed-point profile, bso or loihi")
    parser.add_argument("--input-scale", type=float, default=None,
                        help="netx, onnx fixed: inputs x in [0, 1] enter as round(scale x) (default 255)")
    parser.add_argument("--time-steps", type=int, default=None,
                        help="netx, onnx fixed: steps the readout must sum without saturating (default: training T)")
    parser.set_defaults(handler=_export)


def _export_compiled(args: argparse.Namespace) -> int:
    """--format netx / onnx: one JSON line on stdout, rounding notes on stderr."""
    if args.format == "netx":
        from .export.netx import INPUT_MESSAGE_BITS, export_checkpoint_to_netx

        result = export_checkpoint_to_netx(args.checkpoint, args.out, input_scale=args.input_scale,
                                           time_steps=args.time_steps, dt=args.dt)
        record = {"format": "netx", "out": str(result.path), "profile": result.network.profile,
                  "load": f"lava.lib.dl.netx.hdf5.Network(net_config=..., input_message_bits={INPUT_MESSAGE_BITS})"}
    else:
        from .export.onnx import export_checkpoint_to_onnx

        result = export_checkpoint_to_onnx(args.checkpoint, args.out, semantics=args.semantics, profile=args.profile,
                                           input_scale=args.input_scale, time_steps=args.time_steps, dt=args.dt)
        record = {"format": "onnx", "out": str(result.path), "semantics": result.semantics}
        if result.network is not None:
            record["profile"] = result.network.profile
    if result.network is not None:
        record["layers"] = [layer.name for layer in result.network.layers]
        record["latency"] = result.network.latency
        record["input_scale"] = result.network.quantization[0].get("input_scale")
    for note in result.notes:
        print(f"bso-deploy export: note: {note}", file=sys.stderr)
    print(json.dumps(record))
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {args.format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if args.format != "nir":
        return _export_compiled(args)
    import warnings

    from .export.nir import NIRExportWarning, export_checkpoint_to_nir

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NIRExportWarning)
        path = export_checkpoint_to_nir(args.checkpoint, args.out, dt=args.dt)
    for warning in caught:
        print(f"bso-deploy export: note: {warning.message}", file=sys.stderr)
    print(json.dumps({"format": args.format, "out": str(path)}))
    return 0


def _bench_sim(args: argparse.Namespace) -> int:
    from .bench.sim import SimBenchConfig, run_sim_bench

    config = SimBenchConfig(time_steps=args.time_steps, batch=args.batch, repeats=args.repeats,
                            lava_streamed_samples=args.lava_samples, lava_per_sample_runs=args.lava_fresh_runs,
                            epochs=args.epochs, seed=args.seed, threads=args.threads, out_dir=args.out,
                            lava_copies=args.lava_copies)
    lava_deploy = None
    if not args.no_lava_deploy:
        from .hardware.lava.deploy import deploy as lava_deploy
    run_sim_bench(config, progress=not args.no_progress, lava_deploy=lava_deploy)
    return 0


def _add_learn_parser(subparsers) -> None:
    """``bso-deploy learn``: one flag per AdaptationConfig field (bso_deploy.experiments.adaptation), so the two
    never drift."""
    import dataclasses

    from .experiments.adaptation import AdaptationConfig

    parser = subparsers.add_parser(
        "learn", help="on-chip adaptation: a deployed digits SNN learns its output layer in fixed point",
        description="Runs the adaptation scenario of docs/onchip-learning.md (with no arguments the reference "
                    "scenario on the simulator): accuracy before/after in fixed point and float, flip agreement, "
                    "bits per synapse; writes learn.json and learn.png into --out.")
    for field in dataclasses.fields(AdaptationConfig):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, tuple):
            parser.add_argument(flag, default=",".join(map(str, default)), help=f"comma separated (default "
                                f"{','.join(map(str, default))})")
        elif isinstance(default, bool):
            parser.add_argument(flag, type=lambda text: text.lower() in {"1", "true", "yes"}, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default,
                                help="sim, torch or lava" if field.name == "backend" else f"default {default}")
    parser.add_argument("--out", default="runs/learn", help="output directory (learn.json, learn.png)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_learn)


def learn_config_from_args(args: argparse.Namespace):
    """The AdaptationConfig of parsed ``bso-deploy learn`` arguments."""
    import dataclasses

    from .experiments.adaptation import AdaptationConfig

    values = {}
    for field in dataclasses.fields(AdaptationConfig):
        value = getattr(args, field.name)
        if isinstance(field.default, tuple):
            value = tuple(int(item) for item in str(value).split(",") if item.strip())
        values[field.name] = value
    return AdaptationConfig(**values)


def _learn(args: argparse.Namespace) -> int:
    from .experiments.adaptation import run_adaptation
    from .experiments.learn_report import format_learn_summary, jsonable, save_learn_outputs

    result = jsonable(run_adaptation(learn_config_from_args(args), progress=not args.no_progress).to_dict())
    paths = save_learn_outputs(result, args.out)
    if args.json:
        print(json.dumps({**result, "out": paths}, allow_nan=False))
    else:
        print(format_learn_summary(result))
        print(f"wrote {paths['json']} and {paths['plot']}")
    return 0


def _add_bench_learn_parser(kinds) -> None:
    from .bench.learn import LearnBenchConfig

    defaults = LearnBenchConfig()
    learn = kinds.add_parser("learn", help="learning steps per second: simulator, torch reference, Lava process")
    learn.add_argument("--backends", default=",".join(defaults.backends), help="comma separated: sim, torch, lava")
    learn.add_argument("--samples", type=int, default=defaults.samples, help="samples of the learning stream")
    learn.add_argument("--time-steps", type=int, default=defaults.time_steps)
    learn.add_argument("--hidden", type=int, default=defaults.hidden, help="inputs of the learning layer")
    learn.add_argument("--variant", default=defaults.variant, help="tbso or bso")
    learn.add_argument("--seed", type=int, default=defaults.seed)
    learn.add_argument("--threads", type=int, default=defaults.threads, help="torch intra-op threads")
    learn.add_argument("--out", default=defaults.out_dir)
    learn.add_argument("--no-progress", action="store_true")
    learn.set_defaults(handler=_bench_learn)


def _bench_deploy(args: argparse.Namespace) -> int:
    from .bench.deploy import run_from_args

    return run_from_args(args)


def _bench_learn(args: argparse.Namespace) -> int:
    from .bench.learn import LearnBenchConfig, run_learn_bench

    config = LearnBenchConfig(backends=tuple(b for b in args.backends.split(",") if b), samples=args.samples,
                              time_steps=args.time_steps, hidden=args.hidden, variant=args.variant, seed=args.seed,
                              threads=args.threads, out_dir=args.out)
    run_learn_bench(config, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bso-deploy", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(subparsers)
    _add_export_parser(subparsers)
    add_run_parser(subparsers)
    add_parity_parser(subparsers)
    add_compile_parser(subparsers)
    _add_bench_parser(subparsers)
    _add_learn_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"bso-deploy {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bso-deploy {args.command}: interrupted; the last completed epoch's checkpoint is kept",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
