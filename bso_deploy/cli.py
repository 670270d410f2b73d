"""The ``bso-deploy`` command line: the parser (argparse only: the option modules ``cli_*_parsers`` import
no torch) and :func:`main`, which runs the chosen command's implementation from :data:`COMMANDS`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from types import MappingProxyType

from ._version import __version__
from .cli_args import Parser, UsageError
from .cli_bench_parsers import add_bench_parser
from .cli_deploy_parsers import add_compile_parser, add_parity_parser, add_run_parser
from .cli_train_parsers import add_export_parser, add_learn_parser, add_train_parser

DESCRIPTION = """\
Binary spiking networks from training to fixed-point hardware: train them online with T-BSO/BSO (train),
export them to NIR, lava-dl netx or ONNX (export), compile NIR graphs to a bit-exact fixed-point network
(compile), run them on the float model, the NumPy simulator, the torch integer reference or Lava (run),
check that those agree spike for spike (parity), let a deployed network learn on chip (learn), and measure
it all (bench). `bso-deploy COMMAND --help` describes each command."""

# Each command's implementation, as "module:function". The implementations import torch, NIR and Lava at the
# top of their modules, which takes seconds; resolving only the chosen one, after parsing, keeps `--help`,
# `--version` and option errors fast. A table (not imports here) also keeps the parser free of them.
COMMANDS: MappingProxyType[str, str] = MappingProxyType({
    "train": "bso_deploy.commands.train:train_command",
    "export": "bso_deploy.commands.export:export_command",
    "run": "bso_deploy.commands.run:run_command",
    "parity": "bso_deploy.commands.parity:parity_command",
    "compile": "bso_deploy.commands.compile:compile_command",
    "learn": "bso_deploy.commands.learn:learn_command",
    "bench train": "bso_deploy.commands.bench_train:bench_train_command",
    "bench sim": "bso_deploy.commands.bench_sim:bench_sim_command",
    "bench learn": "bso_deploy.commands.bench_learn:bench_learn_command",
    "bench deploy": "bso_deploy.bench.deploy:run_from_args",
    "bench data": "bso_deploy.bench.data:run_from_args",
})


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; errors raise :class:`~bso_deploy.cli_args.UsageError` (one line)."""
    parser = Parser(prog="bso-deploy", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"bso-deploy {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_train_parser, add_export_parser, add_compile_parser, add_run_parser, add_parity_parser,
                add_learn_parser, add_bench_parser):
        add(subparsers)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """The :data:`COMMANDS` key of parsed arguments: ``run``, ``bench sim``, ..."""
    return f"{args.command} {args.bench}" if args.command == "bench" else args.command


def resolve_command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function that implements command ``name`` (importing its module)."""
    module, function = COMMANDS[name].split(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bso-deploy`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code: 0, 1 (parity
    mismatches), 2 (bad options or input, one line on stderr), 130 (interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    name = command_name(args)
    try:
        return resolve_command(name)(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"bso-deploy {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bso-deploy {name}: interrupted; the last completed epoch's checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
