"""The fuzz framework of ``bso-deploy bench fuzz`` (issue 15): a case is one user operation on one (usually
malformed) input, run in a forked child so that a crash, a hang or a huge allocation never takes the caller down.

A :class:`FuzzCase` says what the operation should do: ``expect="error"`` (bad input: a clean error is the only
right outcome) or ``expect="accept"`` (valid input that must work, and whose result ``verify`` checks).
:func:`run_case` runs it and classifies what happened as an :class:`Outcome`:

=========  ================================================================================================
clean      expect "error": the API raised a :class:`~bso_deploy.errors.BsoDeployError` with a one-line
           message, or the command line returned 2 with exactly one non-empty stderr line, no traceback
accepted   expect "accept": the call returned without error and ``verify`` (when given) is true
crash      any other exception, exit code or output (also a valid input rejected, a child that died)
garbage    expect "error" but the call returned normally (exit code 0); expect "accept" but verify is false
hang       no result within ``timeout_s`` seconds (the child is killed with its whole process group)
=========  ================================================================================================

Family modules ``fuzz_<family>.py`` expose ``cases(rng, count) -> list[FuzzCase]``; ``bench/fuzz.py`` runs them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import select
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cli import main as cli_main
from ..errors import BsoDeployError

__all__ = ["EXPECTATIONS", "OUTCOME_KINDS", "CliResult", "FuzzCase", "Outcome", "run_case", "run_cli"]

EXPECTATIONS = ("error", "accept")
OUTCOME_KINDS = ("clean", "accepted", "crash", "garbage", "hang")
DETAIL_CHARS = 300  # an outcome's detail is one line, cut to this length
# A case's child may reserve this much address space beyond what the parent had when it forked: an input
# whose declared sizes are not checked before allocating then fails fast with MemoryError (a crash) instead of
# taking the machine's memory.
CASE_MEMORY_HEADROOM_BYTES = 4 << 30
CLI_USAGE_ERROR_CODE = 2  # bso_deploy.cli.main's exit code of an expected failure
MESSAGE_HEADER = struct.Struct("<Q")  # the child's message: its length, then JSON {"kind", "detail"}
POLL_SECONDS = 0.05  # how often the parent checks whether the child died without a message


@dataclass(frozen=True)
class FuzzCase:
    """One operation on one input. ``action(work_dir)`` runs in a fresh empty directory (also the current
    directory) and returns what the operation returned (a :class:`CliResult` for the command line);
    ``verify(result, work_dir)`` checks an accepted result."""

    family: str
    name: str
    action: Callable[[Path], object]
    expect: str
    verify: Callable[[object, Path], bool] | None = None

    def __post_init__(self) -> None:
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"FuzzCase {self.family}/{self.name}: expect must be one of {EXPECTATIONS}, "
                             f"got {self.expect!r}")
        if not callable(self.action):
            raise TypeError(f"FuzzCase {self.family}/{self.name}: action must be callable")
        if self.verify is not None and self.expect != "accept":
            raise ValueError(f"FuzzCase {self.family}/{self.name}: verify is for expect='accept' cases")


@dataclass(frozen=True)
class CliResult:
    """What ``bso-deploy ARGV`` did: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Outcome:
    """How a case ended: ``kind`` in :data:`OUTCOME_KINDS`, ``detail`` one line saying what happened."""

    kind: str
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in OUTCOME_KINDS:
            raise ValueError(f"Outcome kind must be one of {OUTCOME_KINDS}, got {self.kind!r}")


def run_cli(argv: list[str]) -> CliResult:
    """Run ``bso_deploy.cli.main(argv)`` in this process with stdout and stderr captured."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli_main([str(arg) for arg in argv])
        except SystemExit as exit_:  # argparse's --help/--version exit through SystemExit
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return CliResult(code=int(code), stdout=stdout.getvalue(), stderr=stderr.getvalue())


def one_line(text: str) -> str:
    """``text`` on one line, cut to :data:`DETAIL_CHARS` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= DETAIL_CHARS else line[:DETAIL_CHARS - 3] + "..."


def describe_exception(error: BaseException) -> str:
    """``Type: message (at file:line in function)``: the innermost frame says where a crash happened."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return one_line(f"{type(error).__name__}: {error}{where}")


def classify_cli_error(result: CliResult) -> Outcome:
    """A command line that should have failed cleanly: exit 2, one non-empty stderr line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.code == 0:
        return Outcome("garbage", one_line(f"exit 0 (no error); stdout: {result.stdout}"))
    clean = (result.code == CLI_USAGE_ERROR_CODE and len(lines) == 1 and "Traceback" not in result.stderr
             and "please report" not in result.stderr)
    if clean:
        return Outcome("clean", one_line(lines[0]))
    return Outcome("crash", one_line(f"exit {result.code}, {len(lines)} stderr lines: {result.stderr}"))


def classify_error_case(run: Callable[[], object]) -> Outcome:
    """Run an ``expect="error"`` action and classify it."""
    try:
        result = run()
    except BsoDeployError as error:
        message = str(error)
        if not message.strip() or "\n" in message.strip():
            return Outcome("crash", one_line(f"{type(error).__name__} without a one-line message: {message!r}"))
        return Outcome("clean", one_line(f"{type(error).__name__}: {message}"))
    except BaseException as error:  # every other exception is the crash being measured
        return Outcome("crash", describe_exception(error))
    if isinstance(result, CliResult):
        return classify_cli_error(result)
    return Outcome("garbage", one_line(f"no error; returned {type(result).__name__}: {result!r}"))


def classify_accept_case(run: Callable[[], object], verify: Callable[[object], bool] | None) -> Outcome:
    """Run an ``expect="accept"`` action and classify it."""
    try:
        result = run()
    except BaseException as error:  # a valid input rejected or crashing is a crash
        return Outcome("crash", "valid input failed: " + describe_exception(error))
    if isinstance(result, CliResult) and result.code != 0:
        return Outcome("crash", one_line(f"valid input failed: exit {result.code}: {result.stderr}"))
    if verify is None:
        return Outcome("accepted", "returned without error")
    try:
        correct = verify(result)
    except BaseException as error:
        return Outcome("crash", "verify raised: " + describe_exception(error))
    if correct is True or (correct is not False and bool(correct)):
        return Outcome("accepted", "returned a verified result")
    return Outcome("garbage", one_line(f"valid input gave a wrong result: {result!r}"))


def classify(case: FuzzCase, work_dir: Path) -> Outcome:
    """Run ``case`` in ``work_dir`` in this process and classify what happened (no timeout: see run_case)."""
    def run() -> object:
        return case.action(work_dir)

    if case.expect == "error":
        return classify_error_case(run)
    verify = None if case.verify is None else (lambda result: case.verify(result, work_dir))
    return classify_accept_case(run, verify)


def _limit_address_space(headroom_bytes: int | None) -> None:
    """Cap the child's address space at its current size plus ``headroom_bytes`` (Linux; no-op elsewhere)."""
    if headroom_bytes is None:
        return
    try:
        with open("/proc/self/statm") as statm:
            virtual_bytes = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (virtual_bytes + headroom_bytes, resource.RLIM_INFINITY))
    except (OSError, ValueError):
        pass


def _child(case: FuzzCase, work_dir: Path, write_fd: int, headroom_bytes: int | None) -> None:
    """The forked child: own process group, output discarded, one thread, run, send the outcome, exit."""
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # lives until os._exit
        for signum in (signal.SIGINT, signal.SIGTERM):  # not the caller's handlers (the CLI raises on SIGTERM)
            signal.signal(signum, signal.SIG_DFL)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)  # OpenMP pools do not survive fork; one thread also shares the cores
        _limit_address_space(headroom_bytes)
        os.chdir(work_dir)
        outcome = classify(case, work_dir)
        payload = json.dumps({"kind": outcome.kind, "detail": outcome.detail}).encode()
    except BaseException as error:  # the harness itself must report, never raise in a child
        payload = json.dumps({"kind": "crash", "detail": "harness: " + describe_exception(error)}).encode()
    try:
        view = memoryview(MESSAGE_HEADER.pack(len(payload)) + payload)
        while view:
            view = view[os.write(write_fd, view):]
    finally:
        os._exit(0)


def _receive(read_fd: int, pid: int, deadline: float) -> tuple[bytes | None, int | None]:
    """The child's length-prefixed message and, once reaped, its wait status. The message is None when the
    deadline passes first (a hang) or the child exits without a complete one (``b""``: a crash). EOF cannot
    be waited for: a process the case started may hold the pipe open."""
    data, status = b"", None
    while True:
        if len(data) >= MESSAGE_HEADER.size:
            end = MESSAGE_HEADER.size + MESSAGE_HEADER.unpack_from(data)[0]
            if len(data) >= end:
                return data[MESSAGE_HEADER.size:end], status
        if status is not None:  # exited: what is left in the pipe is all there is
            ready, _, _ = select.select([read_fd], [], [], 0)
            chunk = os.read(read_fd, 65536) if ready else b""
            if not chunk:
                return b"", status
            data += chunk
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, status
        ready, _, _ = select.select([read_fd], [], [], min(remaining, POLL_SECONDS))
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:  # every writer closed the pipe: the child is gone
                return b"", status
            data += chunk
        else:
            reaped, wait_status = os.waitpid(pid, os.WNOHANG)
            status = wait_status if reaped else None


def _kill_group(pid: int) -> None:
    """Kill the child's process group: the child and whatever it started (a zombie child keeps the group id
    reserved until it is reaped, so this never reaches another process)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exit_description(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def run_case(case: FuzzCase, timeout_s: float, memory_headroom_bytes: int | None = CASE_MEMORY_HEADROOM_BYTES
             ) -> Outcome:
    """Run ``case`` in a forked child in a fresh temporary directory and return its :class:`Outcome`.

    The child sends its outcome through a pipe; after ``timeout_s`` seconds without one, the parent kills the
    child's process group and the outcome is a hang. A child that dies without an outcome is a crash. Never
    raises for anything the case does and never leaves the child running."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    with tempfile.TemporaryDirectory(prefix="bso-fuzz-") as work:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # SIGINT/SIGTERM are held while forking: a handler that raises inside os.fork's at-fork callbacks
        # (logging registers one) is "ignored" by Python and the command would go on; held, the signal is
        # delivered in the parent right after the fork, where it stops the run as anywhere else.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
            for signum in (signal.SIGINT, signal.SIGTERM):  # the default actions, then the signals unheld
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            os.close(read_fd)
            _child(case, Path(work), write_fd, memory_headroom_bytes)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(write_fd)
        message, status = None, None
        try:
            message, status = _receive(read_fd, pid, time.monotonic() + timeout_s)
        finally:
            os.close(read_fd)
            _kill_group(pid)
            if status is None:
                _, status = os.waitpid(pid, 0)
    if message is None:
        return Outcome("hang", f"no result within {timeout_s:g} s")
    if not message:
        return Outcome("crash", f"the case's process died without a result ({_exit_description(status)})")
    decoded = json.loads(message.decode())
    return Outcome(decoded["kind"], decoded["detail"])
