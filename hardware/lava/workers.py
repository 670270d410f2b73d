"""Lava's worker processes never outlive the process that started them (docs/errors.md, "Lava cleanup").

Lava's runtime forks its workers (one per process model, plus the shared-memory manager's server) when it
starts, and stops them with messages when told to; a run cut short (SIGINT, SIGTERM, an exception in a process
model, a timeout) can leave them waiting forever. :class:`WorkerGuard` makes three guarantees:

1. **Forked under guard.** While :meth:`WorkerGuard.starting` is active, every child the process forks (through
   ``os.fork``: Lava's workers) ignores SIGINT and SIGTERM, so that Ctrl-C or ``kill`` of the whole process
   group reaches only the main process, which stops them in order; and on Linux it is given
   ``PR_SET_PDEATHSIG = SIGKILL``, so the kernel kills it when the thread that forked it ends, however the
   main process dies (SIGKILL included). A child whose parent died before the signal was set exits at once.
   In the main process, a SIGINT or SIGTERM with a Python handler (KeyboardInterrupt, the command line's
   Terminated) that arrives meanwhile is held until the block ends and raised there: raised during a fork it
   would land in an at-fork hook (logging's), where Python prints and drops it, and the run would go on. A
   second such signal is not held.
2. **Stopped in bounded time.** :meth:`WorkerGuard.stop` runs Lava's own stop in a helper thread and waits
   ``STOP_SECONDS`` at most (a runtime interrupted mid-message may never answer).
3. **Killed if still there.** Then Lava's own workers are killed and its shared-memory manager shut down
   (:func:`release_runtime`: the manager unlinks the shared memory it holds, which a killed manager would
   leave to Python's resource tracker and its warning), and every child forked since :meth:`starting` began
   that is still alive is killed (SIGKILL) and reaped.
4. **A dead worker ends the run.** Lava 0.10 does not notice a worker that died mid-run (an exception in a
   process model: its peers wait for its messages forever). Inside :meth:`WorkerGuard.watching` a monitor
   thread checks the workers every ``WATCH_SECONDS``; when one has ended it interrupts the main thread with
   SIGUSR1, whose handler raises :class:`LavaWorkerError` (the worker's own exception and traceback attached)
   where the run waits, and the caller's cleanup stops the rest.

The fork hook is installed once per interpreter (``os.register_at_fork`` cannot be undone) and does nothing
outside :meth:`starting`; the count of active guards is the only state it reads.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["INTERRUPTED_STOP_SECONDS", "STOP_SECONDS", "WATCH_SECONDS", "LavaWorkerError", "WorkerGuard",
           "end_workers", "release_runtime"]

STOP_SECONDS = 20.0  # how long Lava's own stop may take before its workers are killed
INTERRUPTED_STOP_SECONDS = 3.0  # the same after a run was cut short (Ctrl-C, SIGTERM, an error): exit promptly
REAP_SECONDS = 5.0  # how long a killed worker may take to be reaped, and the manager to shut down
WATCH_SECONDS = 0.2  # how often a run's workers are checked (WorkerGuard.watching)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_hook = {"installed": False, "active": 0, "parent": 0}  # read by the fork hook (module docstring)
_hook_lock = threading.Lock()


def _set_parent_death_signal() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _before_fork() -> None:
    _hook["parent"] = os.getpid()


def _in_forked_child() -> None:
    if _hook["active"] <= 0:
        return
    _hook["active"] = 0  # the child starts no Lava of its own under this guard
    _set_parent_death_signal()
    if os.getppid() != _hook["parent"]:  # the parent died between fork and prctl: nobody will stop us
        os._exit(1)
    if threading.current_thread() is threading.main_thread():  # Python sets handlers in the main thread only
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _install_hook() -> None:
    with _hook_lock:
        if not _hook["installed"]:
            os.register_at_fork(before=_before_fork, after_in_child=_in_forked_child)
            _hook["installed"] = True


class LavaWorkerError(RuntimeError):
    """A Lava worker process ended during a run: an exception in a process model (its traceback is attached as
    a note) or a worker killed from outside."""


def _worker_failure(process: multiprocessing.process.BaseProcess) -> LavaWorkerError:
    reported = getattr(process, "exception", None)  # Lava's SystemProcess: (exception, traceback) or None
    if isinstance(reported, tuple) and len(reported) == 2:
        error = LavaWorkerError(f"a Lava process model failed in worker pid {process.pid}: "
                                f"{type(reported[0]).__name__}: {reported[0]}")
        error.add_note(f"the worker's traceback:\n{reported[1]}")
        return error
    try:
        code = process.exitcode
    except ValueError:  # closed: Lava joined it
        code = "unknown"
    return LavaWorkerError(f"Lava worker pid {process.pid} ended during the run (exit code {code})")


class WorkerGuard:
    """The children one Lava runtime forks: fork them inside :meth:`starting`, end them with :meth:`stop`."""

    def __init__(self) -> None:
        self._before: set[int] | None = None  # pids of multiprocessing children that existed before starting
        self._workers: dict[int, multiprocessing.process.BaseProcess] = {}

    @property
    def workers(self) -> list[int]:
        """The pids of the children forked under this guard that are still alive."""
        self._collect()
        return sorted(pid for pid, process in self._workers.items() if _alive(process))

    def _collect(self) -> None:
        if self._before is None:
            return
        for process in multiprocessing.active_children():
            if process.pid not in self._before:
                self._workers.setdefault(process.pid, process)

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Fork Lava's workers inside this block (``create_runtime``, a first ``run``)."""
        _install_hook()
        if self._before is None:
            self._before = {process.pid for process in multiprocessing.active_children()}
        with _hook_lock:
            _hook["active"] += 1
        held: list[int] = []
        handlers = _hold_signals(held)
        try:
            yield
        finally:
            with _hook_lock:
                _hook["active"] -= 1
            self._collect()
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            if held:  # now, outside any fork hook, the signal does what it would have done
                handlers[held[0]](held[0], None)

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Run a Lava run inside this block (main thread): a worker that ends meanwhile makes it raise
        :class:`LavaWorkerError` (module docstring, 4). Elsewhere than in the main thread it only runs the block."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        pending: list[LavaWorkerError] = []
        done = threading.Event()
        main = threading.main_thread().ident

        def handler(signum: int, frame: object) -> None:
            if pending:
                raise pending.pop()

        def monitor() -> None:
            while not done.wait(WATCH_SECONDS):
                ended = [process for process in list(self._workers.values()) if not _alive(process)]
                if ended:
                    pending.append(_worker_failure(ended[0]))
                    signal.pthread_kill(main, signal.SIGUSR1)
                    return

        previous = signal.signal(signal.SIGUSR1, handler)
        thread = threading.Thread(target=monitor, name="lava-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            try:
                if pending:  # signalled as the block ended: raise it here, not after the handler is gone
                    raise pending.pop()
            finally:
                signal.signal(signal.SIGUSR1, previous)

    def stop(self, graceful: Callable[[], None], timeout: float = STOP_SECONDS,
             release: Callable[[], None] | None = None) -> BaseException | None:
        """Run ``graceful`` (Lava's stop) for ``timeout`` seconds at most; if it did not return, ``release``
        (:func:`release_runtime`) for ``REAP_SECONDS``; then kill and reap every worker still alive. Returns
        the exception ``graceful`` raised (None if it returned or timed out)."""
        self._collect()
        outcome: list[BaseException | None] = []
        try:
            finished = _bounded(graceful, timeout, outcome)
            if not (finished and outcome == [None]) and release is not None:
                _bounded(release, REAP_SECONDS, [])
        finally:  # also when a second Ctrl-C interrupts the wait
            self.kill()
        return outcome[0] if outcome else None

    def kill(self) -> None:
        """SIGKILL and reap every worker still alive."""
        self._collect()
        for process in self._workers.values():
            if _alive(process):
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for process in self._workers.values():
            if _alive(process):  # the base class's join: Lava's SystemProcess.join takes no timeout
                multiprocessing.process.BaseProcess.join(process, REAP_SECONDS)
        multiprocessing.active_children()  # reaps the finished ones


def _hold_signals(held: list[int]) -> dict[int, Callable]:
    """In the main thread, replace the Python handlers of SIGINT and SIGTERM by one that appends the signal to
    ``held`` (the first time; a second signal runs the original handler at once). Returns the originals."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    handlers = {signum: handler for signum, handler in handlers.items() if callable(handler)}

    def hold(signum: int, frame: object) -> None:
        if held:
            handlers[signum](signum, frame)
        held.append(signum)

    for signum in handlers:
        signal.signal(signum, hold)
    return handlers


def _alive(process: multiprocessing.process.BaseProcess) -> bool:
    """Whether ``process`` runs; a process object Lava closed after joining it has ended."""
    try:
        return process.is_alive()
    except ValueError:  # "process object is closed"
        return False


def _bounded(call: Callable[[], None], seconds: float, outcome: list[BaseException | None]) -> bool:
    """Run ``call`` in a daemon thread for ``seconds`` at most; append None or its exception to ``outcome``.
    True if it finished."""
    def attempt() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # handed to the caller, which decides whether it matters
            outcome.append(error)

    helper = threading.Thread(target=attempt, name="lava-stop", daemon=True)
    helper.start()
    helper.join(seconds)
    return not helper.is_alive()


def release_runtime(runtime: object) -> None:
    """What Lava's stop would have done last, for a runtime that did not stop: kill its workers (a process
    model's) and shut its shared-memory manager down, which unlinks the shared memory."""
    messaging = getattr(runtime, "_messaging_infrastructure", None)
    if messaging is None:
        return
    for actor in list(getattr(messaging, "actors", [])):
        if _alive(actor):
            actor.kill()
    manager = getattr(messaging, "smm", None)
    if manager is not None:
        manager.shutdown()


def end_workers(guard: WorkerGuard, graceful: Callable[[], None], runtime: Callable[[], object] | None = None) -> None:
    """Stop a runtime's workers with ``guard.stop(graceful, ...)``. While an exception is being handled (the
    run was cut short: Ctrl-C, SIGTERM, an error in a process model) Lava's stop gets
    ``INTERRUPTED_STOP_SECONDS`` and its own failure is dropped, since the exception under way is the one to
    report; otherwise it gets ``STOP_SECONDS`` and a failure is raised, after the workers are killed.
    ``runtime()`` gives the Lava runtime (or None) for :func:`release_runtime` when Lava's stop did not finish."""
    handling = sys.exc_info()[1] is not None
    release = None if runtime is None else (lambda: release_runtime(runtime()))
    error = guard.stop(graceful, INTERRUPTED_STOP_SECONDS if handling else STOP_SECONDS, release)
    if error is not None and not handling:
        raise error
