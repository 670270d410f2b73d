"""argparse pieces of the ``bso-deploy`` parser: a parser whose errors are one line, and option types that
check a name (or a comma-separated list of names) against a fixed set with an error that lists the valid
ones. Imports argparse only (the parser is built without torch)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


class UsageError(Exception):
    """A command line that argparse rejects; ``str(error)`` is the one-line message, prefixed with the
    (sub)command: ``bso-deploy run: error: argument --backend: unknown backend 'gpu'; ...``."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (one line, no usage block) instead of exiting,
    so that ``cli.main`` returns exit code 2 for a bad option exactly as for a library ValueError. Its
    subparsers are Parsers too (argparse gives them the parent's class)."""

    def error(self, message: str):  # argparse's hook: it calls this for every parse error
        raise UsageError(f"{self.prog}: error: {message}")


class NamedChoice:
    """The ``type=`` of an option that takes one of ``names``: returns the name unchanged, or raises
    argparse's ArgumentTypeError ``unknown <noun> 'x'; valid: a, b`` (``valid`` may say ``valid backends``).
    Used with ``choices=names`` too, so that help and usage list the names."""

    def __init__(self, noun: str, names: Sequence[str], valid: str = "valid") -> None:
        self.noun, self.names, self.valid = noun, tuple(names), valid
        self.__name__ = noun  # argparse names the type in some messages

    def __call__(self, text: str) -> str:
        if text not in self.names:
            raise argparse.ArgumentTypeError(f"unknown {self.noun} {text!r}; {self.valid}: {', '.join(self.names)}")
        return text


class CommaSeparatedChoices(NamedChoice):
    """The ``type=`` of an option that takes a comma-separated list of ``names`` (``sim,torch``): returns the
    text unchanged (the command splits it), or raises ArgumentTypeError naming the first unknown item. An
    argparse ``choices=`` cannot check a list, so the set lives here (``.names``)."""

    def __call__(self, text: str) -> str:
        items = [item for item in text.split(",") if item]
        if not items:
            raise argparse.ArgumentTypeError(f"give one or more {self.noun}s, comma separated, from "
                                             f"{', '.join(self.names)}")
        for item in items:
            super().__call__(item)
        return text


class OptionalCommaSeparatedChoices(CommaSeparatedChoices):
    """:class:`CommaSeparatedChoices` that also takes the empty text (returned as is: "none of them")."""

    def __call__(self, text: str) -> str:
        return text if not text.strip(",") else super().__call__(text)


def add_choice(parser: argparse.ArgumentParser, flag: str, names: Sequence[str], noun: str, help: str,
               default: str | None = None, required: bool = False, valid: str = "valid") -> argparse.Action:
    """``parser.add_argument(flag, choices=names, type=NamedChoice(noun, names, valid), ...)``; ``parser`` may
    be an argument group."""
    return parser.add_argument(flag, choices=tuple(names), type=NamedChoice(noun, names, valid), default=default,
                               required=required, help=help)


def add_choice_list(parser: argparse.ArgumentParser, flag: str, names: Sequence[str], noun: str, help: str,
                    default: str, valid: str = "valid", empty_ok: bool = False) -> argparse.Action:
    """An option taking a comma-separated list of ``names`` (with ``empty_ok``, also ''); the help ends with
    the valid names."""
    kind = OptionalCommaSeparatedChoices if empty_ok else CommaSeparatedChoices
    return parser.add_argument(flag, type=kind(noun, names, valid), default=default,
                               metavar="NAME[,NAME...]", help=f"{help} (comma separated: {', '.join(names)}; "
                               "default %(default)s)")


class NamedCounts(CommaSeparatedChoices):
    """The ``type=`` of an option that takes ``name=N`` pairs, comma separated (``bso=1,bptt-ste=2``), the names
    among ``names`` and each once, N an integer >= 1: returns a tuple of (name, N) pairs, or raises
    ArgumentTypeError naming the bad item."""

    def __call__(self, text: str) -> tuple[tuple[str, int], ...]:
        pairs: list[tuple[str, int]] = []
        for item in (item for item in text.split(",") if item):
            name, equals, count = item.partition("=")
            NamedChoice.__call__(self, name)
            if not equals or not count.isdigit() or int(count) < 1:
                raise argparse.ArgumentTypeError(f"{item!r} is not {self.noun}=N with N an integer >= 1")
            if name in dict(pairs):
                raise argparse.ArgumentTypeError(f"{self.noun} {name!r} is given twice")
            pairs.append((name, int(count)))
        return tuple(pairs)
