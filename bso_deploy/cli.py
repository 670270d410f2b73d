"""The ``bso-deploy`` command line: parses arguments into config objects and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .config import DATASET_NAMES, DEVICES, ENCODER_NAMES, METHODS, TrainConfig
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
    parser.add_argument("--fp-optimizer", default=defaults.fp_optimizer, help="sgd or adam")
    parser.add_argument("--decay-every", type=int, default=defaults.decay_every,
                        help="multiply threshold and 1-momentum by --decay-factor every N epochs (0: never)")
    parser.add_argument("--decay-factor", type=float, default=defaults.decay_factor)
    parser.add_argument("--reset", default=defaults.reset, help="LIF reset: subtract or zero")
    parser.add_argument("--data-root", default=None, help="directory of local MNIST/CIFAR files")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--out", required=True, help="run directory (checkpoint.pt, metrics.json, training.png)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from .run import TrainingRun

    if args.resume:
        run = TrainingRun.resume(args.out, epochs=args.epochs)
    else:
        config = TrainConfig(
            dataset=args.dataset, method=args.method, model=args.model, time_steps=args.time_steps,
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
            binary=args.binary, hidden=tuple(int(v) for v in args.hidden.split(",") if v.strip()),
            encoder=args.encoder, threshold=args.threshold, momentum=args.momentum, lr=args.lr,
            fp_optimizer=args.fp_optimizer, decay_every=args.decay_every, decay_factor=args.decay_factor,
            reset=args.reset, data_root=args.data_root, num_workers=args.num_workers)
        run = TrainingRun.create(config, args.out)
    metrics = run.fit(progress=not args.no_progress)
    print(json.dumps({"out": str(run.out_dir), "test_accuracy": metrics["test_accuracy"],
                      "train_seconds": round(metrics["train_seconds"], 2)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bso-deploy", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(subparsers)
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
