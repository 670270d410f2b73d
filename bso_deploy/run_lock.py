"""The lock of a run directory: one ``bso-deploy train`` writes a given ``--out`` at a time (docs/errors.md).

:class:`RunLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<directory>/.lock``: non-blocking, so a second
process fails at once with :class:`~bso_deploy.errors.RunLockedError` naming the directory and the pid that
holds it (the holder writes its pid into the file). The lock belongs to the open file, so the operating system
releases it when the holder exits, however it exits (a crash, SIGKILL): no stale lock survives its process.
The file itself stays (removing it would let a third process lock a new file while a second still waits on
the old one) and is not written atomically: the lock lives on that one file, which must not be replaced.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import MissingFileError, RunLockedError

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(directory):`` holds the lock of ``directory`` (created first when ``create``; with
    ``create=False`` a missing directory raises MissingFileError). Raises RunLockedError when another process
    holds it. A lock is released by :meth:`release`, at the end of the ``with`` block, or when the process ends."""

    def __init__(self, directory: str | os.PathLike, create: bool = True) -> None:
        self.directory = Path(directory)
        self.create = create
        self._descriptor: int | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_NAME

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> RunLock:
        if self.held:
            raise RuntimeError(f"the lock of {self.directory} is already held by this RunLock")
        if not self.directory.is_dir():
            if not self.create:
                raise MissingFileError(f"run directory {self.directory} does not exist; train one with "
                                       "`bso-deploy train --out DIR`")
            self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise RunLockedError(f"run directory {self.directory} is being written by another bso-deploy process "
                                 f"({holder}); wait for it to finish or give another --out") from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        """Give the lock back; idempotent. The pid is cleared first, so a reader never sees a stale one."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            try:
                os.ftruncate(descriptor, 0)
            finally:
                os.close(descriptor)  # closing the last descriptor of the open file releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _holder(descriptor: int) -> str:
    """'pid N' from the lock file's text, or a phrase when the holder has not written it yet."""
    text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "pid not yet recorded"
