"""The exceptions bso-deploy's public functions raise for expected failures (docs/errors.md).

Every expected failure (a bad file, a bad array, a value outside a fixed-point range, a size past a limit, a
locked run directory) is a :class:`BsoDeployError`. Each class also subclasses the built-in exception a caller
would catch without knowing bso-deploy (ValueError for bad values, OSError for files), so ``except ValueError``
keeps working. The command line prints ``str(error)`` as one line and exits with code 2.

Hierarchy::

    BsoDeployError
    +-- InvalidFileError (ValueError)     a file that exists but is not what it should be
    +-- InvalidInputError (ValueError)    an array, option or argument that is malformed
    |   +-- RangeError                    a value outside its documented range (the range is named)
    +-- ResourceLimitError (ValueError)   work or memory past a documented limit (the size is named)
    +-- RunLockedError (OSError)          a run directory another process is writing
    +-- MissingFileError (FileNotFoundError)   a file or directory that is not there
"""

from __future__ import annotations

__all__ = ["BsoDeployError", "InvalidFileError", "InvalidInputError", "MissingFileError", "RangeError",
           "ResourceLimitError", "RunLockedError"]


class BsoDeployError(Exception):
    """Base of every expected failure; its message is one line that says what is wrong and what to do."""


class InvalidFileError(BsoDeployError, ValueError):
    """A file (NIR, netx, .npy/.npz, checkpoint, compiled network) that is malformed: the message names it."""


class InvalidInputError(BsoDeployError, ValueError):
    """An array or argument that is malformed: wrong shape, dtype, NaN/Inf, complex values."""


class RangeError(InvalidInputError):
    """A value outside its documented range; the message names the range."""


class ResourceLimitError(BsoDeployError, ValueError):
    """Work that would need more memory or steps than a documented limit; the message names the size."""


class RunLockedError(BsoDeployError, OSError):
    """A run directory locked by another process that is writing it."""


class MissingFileError(BsoDeployError, FileNotFoundError):
    """A file or directory that does not exist; the message says how to get it."""
