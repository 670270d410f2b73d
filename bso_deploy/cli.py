"""The ``bso-deploy`` command line: the parser (argparse only: the option modules ``cli_*_parsers`` import
no torch) and :func:`main`, which runs the chosen command's implementation from :data:`COMMANDS`."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import MappingProxyType

from ._version import __version__
from .cli_args import Parser, UsageError
from .cli_bench_parsers import add_bench_parser
from .cli_deploy_parsers import add_compile_parser, add_parity_parser, add_run_parser
from .cli_train_parsers import add_export_parser, add_learn_parser, add_train_parser
from .crash_log import one_line, write_crash_log
from .errors import BsoDeployError
from .extras import MissingExtraError

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
    "bench scale": "bso_deploy.bench.data_scale:run_from_args",
    "bench fuzz": "bso_deploy.bench.fuzz:run_from_args",
})


# Expected failures: exit code 2 and their message on one line. OSError covers FileNotFoundError and
# RunLockedError; MissingExtraError (an ImportError) names the extra to install. Anything else is a bug.
EXPECTED_ERRORS = (BsoDeployError, ValueError, OSError, FloatingPointError, UsageError, MissingExtraError)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT, so that every ``with`` block and
    ``finally`` runs (Lava's runtime is stopped, hardware/lava/workers.py) before the command exits with 143."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in this process (main thread only; elsewhere
    Python cannot install handlers). A forked child that inherits the handler dies of the signal as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    main_pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:  # a forked child: the default action, as if no handler were installed
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    """Run ``bso-deploy`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code (docs/errors.md): 0, 1
    (parity mismatches), 2 (an expected failure: bad options, files or input; one line on stderr), 3 (an
    internal error: one line on stderr naming the crash log with the traceback), 130 (interrupted: SIGINT),
    143 (terminated: SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(one_line(str(error), limit=10_000), file=sys.stderr)
        return 2
    name = command_name(args)
    try:
        with sigterm_raises():
            return resolve_command(name)(args)
    except EXPECTED_ERRORS as error:
        print(f"bso-deploy {name}: error: {error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = "; the last completed epoch's checkpoint is kept" if name == "train" else ""
        print(f"bso-deploy {name}: interrupted{kept}", file=sys.stderr)
        return 130
    except Terminated:
        kept = "; the last completed epoch's checkpoint is kept" if name == "train" else ""
        print(f"bso-deploy {name}: terminated (SIGTERM){kept}", file=sys.stderr)
        return 143
    except Exception as error:  # the boundary: anything else is a bug, logged, never a traceback
        return internal_error(name, argv, error)


def error_message(error: BaseException) -> str:
    """The one-line message of an expected failure: its text on one line (its type when it has none)."""
    text = one_line(_text(error), limit=10_000)
    return text or type(error).__name__


def internal_error(name: str, argv: Sequence[str], error: BaseException) -> int:
    """Report an unexpected exception: the traceback to a crash log (bso_deploy.crash_log), one line on stderr
    naming it; exit code 3."""
    path = write_crash_log(name, argv, error)
    where = f"the log {path}" if path is not None else "this message (no crash log could be written)"
    print(f"bso-deploy {name}: internal error ({type(error).__name__}: {one_line(_text(error))}); please report it "
          f"with {where}", file=sys.stderr)
    return 3


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose __str__ fails is still reported
        return repr(type(error))


if __name__ == "__main__":
    sys.exit(main())
