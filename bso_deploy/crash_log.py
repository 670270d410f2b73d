"""The log of an unexpected exception: where it goes and what it holds (docs/errors.md, "The crash log").

The command line never shows a bare traceback. An exception that is not an expected failure (a bug, or an
input the validation layer missed) prints one line on stderr naming the log written here, whose text holds
the command, its arguments, the versions and the full traceback, so that the report can carry it.

The directory, first that is set: ``$BSO_DEPLOY_LOG_DIR``, ``$XDG_STATE_HOME/bso-deploy``,
``~/.local/state/bso-deploy``; if it cannot be written, ``<temp dir>/bso-deploy`` (``tempfile.gettempdir()``).
The file is ``crash-<UTC time>-<pid>.log``, written atomically (``bso_deploy.io``): a log is complete or absent.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._version import __version__
from .io import atomic_write_bytes

__all__ = ["LOG_DIR_VARIABLE", "log_directories", "one_line", "write_crash_log"]

LOG_DIR_VARIABLE = "BSO_DEPLOY_LOG_DIR"
APP_DIRECTORY = "bso-deploy"
MESSAGE_CHARACTERS = 300  # the longest exception message the one-line summary quotes (the log has it whole)


def log_directories(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The directories a crash log is tried in, in order: the configured one (``$BSO_DEPLOY_LOG_DIR``, else
    ``$XDG_STATE_HOME/bso-deploy``, else ``~/.local/state/bso-deploy``), then the temp dir's ``bso-deploy``."""
    environ = os.environ if environ is None else environ
    if environ.get(LOG_DIR_VARIABLE):
        configured = Path(environ[LOG_DIR_VARIABLE]).expanduser()
    elif environ.get("XDG_STATE_HOME"):
        configured = Path(environ["XDG_STATE_HOME"]).expanduser() / APP_DIRECTORY
    else:
        configured = Path.home() / ".local" / "state" / APP_DIRECTORY
    return [configured, Path(tempfile.gettempdir()) / APP_DIRECTORY]


def one_line(text: str, limit: int = MESSAGE_CHARACTERS) -> str:
    """``text`` on one line: its lines joined by spaces, blank lines dropped, cut at ``limit`` characters."""
    joined = " ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[:limit - 3] + "..."


def _report(command: str, argv: Sequence[str], error: BaseException) -> str:
    lines = [f"bso-deploy {__version__}: internal error in `bso-deploy {command}`",
             f"time (UTC): {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
             f"arguments: {list(argv)!r}",
             f"python: {sys.version.split()[0]} on {platform.platform()}, pid {os.getpid()}",
             "", "".join(traceback.format_exception(type(error), error, error.__traceback__))]
    return "\n".join(lines)


def write_crash_log(command: str, argv: Sequence[str], error: BaseException,
                    environ: Mapping[str, str] | None = None) -> Path | None:
    """Write the log of ``error`` (raised by ``bso-deploy command`` run with ``argv``) to the first writable
    directory of :func:`log_directories`; returns its path, or None when no directory could be written."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    data = _report(command, argv, error).encode("utf-8", errors="backslashreplace")
    for directory in log_directories(environ):
        try:
            return atomic_write_bytes(directory / f"crash-{stamp}-{os.getpid()}.log", data)
        except OSError:  # not writable (read-only, not a directory, no space): try the next one
            continue
    return None
