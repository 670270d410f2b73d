"""No Lava worker outlives its command (hardware/lava/workers.py, bso_deploy/bench/fuzz_lava.py, docs/errors.md):
real signals to real processes. The guard itself, on plain forked workers: they ignore SIGINT/SIGTERM, die with
their parent even under SIGKILL, and a stop that never returns is cut short by killing them. Then Lava runs of
`bso-deploy run`, `parity` and the deploy API interrupted by SIGINT (alone and to the process group), SIGTERM,
SIGKILL and an exception inside a process model: the processes left in the target's session are counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bso_deploy.hardware.lava.workers import WorkerGuard
from conftest import require_lava

from bso_deploy.bench import fuzz_lava

GUARDED = """
import multiprocessing, sys, time
from bso_deploy.hardware.lava.workers import WorkerGuard
multiprocessing.set_start_method("fork")
guard = WorkerGuard()
with guard.starting():
    worker = multiprocessing.Process(target=time.sleep, args=(600,))
    worker.start()
unguarded = multiprocessing.Process(target=time.sleep, args=(600,))
unguarded.start()
print(worker.pid, unguarded.pid, flush=True)
if sys.argv[1] == "hang":  # a stop that never returns: the guard kills the worker after its timeout
    start = time.monotonic()
    error = guard.stop(lambda: time.sleep(600), timeout=1.0)
    print(error, round(time.monotonic() - start), guard.workers, worker.is_alive(), flush=True)
    unguarded.kill()
else:
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def guarded(mode: str) -> tuple[subprocess.Popen, int, int]:
    process = subprocess.Popen([sys.executable, "-c", GUARDED, mode], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    worker, unguarded = map(int, process.stdout.readline().split())
    return process, worker, unguarded


def test_a_guarded_worker_ignores_group_signals_and_dies_with_its_parent_even_under_sigkill():
    process, worker, unguarded = guarded("wait")
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(worker, signum)
        time.sleep(0.5)
        assert alive(worker)  # the main process alone decides when its workers stop
        os.kill(unguarded, signal.SIGTERM)
        assert wait_gone(unguarded)  # a child forked outside the guard keeps the default actions
        process.send_signal(signal.SIGKILL)  # no handler, no atexit: only the kernel can end the worker
        process.wait(timeout=30)
        assert wait_gone(worker), "the guarded worker outlived its SIGKILLed parent"
    finally:
        process.kill()
        process.wait()
        for pid in (worker, unguarded):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_stop_that_never_returns_is_cut_short_and_the_workers_killed():
    process, worker, _ = guarded("hang")
    try:
        report = process.stdout.readline().split()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()
    assert report == ["None", "1", "[]", "False"], report
    assert not alive(worker)


def test_a_failing_stop_is_returned_and_the_workers_still_killed():
    guard = WorkerGuard()
    with guard.starting():
        pass  # nothing forked
    error = guard.stop(lambda: (_ for _ in ()).throw(RuntimeError("Runtime Received 7")), timeout=5.0)
    assert isinstance(error, RuntimeError) and guard.workers == []


# Each fault: (kind, target, expected exit code). The CLI turns SIGINT into 130 and SIGTERM into 143 after
# stopping Lava; the API script has no handler (SIGTERM ends it at once) and SIGKILL none at all: there only
# the workers' parent-death signal ends them. An exception in a process model is an internal error (3).
FAULTS = [("sigint", "run", 130), ("sigint-group", "parity", 130), ("sigterm", "run", 143),
          ("sigterm-group", "parity", 143), ("sigterm", "deploy", -signal.SIGTERM),
          ("sigkill", "run", -signal.SIGKILL), ("model-exception", "run", 3)]


def fault_directory(tmp_path_factory) -> Path:
    """One directory for every fault of this file: the model and inputs are written once (fuzz_lava.prepare)."""
    return tmp_path_factory.getbasetemp() / "lava-faults"


@pytest.fixture(scope="module")
def one_fault_report(tmp_path_factory) -> dict:
    """``run_faults(1)``: its one fault is the first kind on the first target (sigint, run), which the fault test
    below checks too; run once for both."""
    require_lava()
    return fuzz_lava.run_faults(1, progress=False, directory=fault_directory(tmp_path_factory))


@pytest.mark.slow
@pytest.mark.parametrize("kind,target,code", FAULTS, ids=[f"{k}-{t}" for k, t, _ in FAULTS])
def test_no_lava_worker_outlives_a_fault(tmp_path_factory, request, kind, target, code):
    require_lava()
    directory = fault_directory(tmp_path_factory)
    if (kind, target) == (fuzz_lava.FAULT_KINDS[0], fuzz_lava.TARGETS[0]):
        row = request.getfixturevalue("one_fault_report")["rows"][0]
    else:
        row = fuzz_lava.run_fault(kind, target, directory, np.random.default_rng(len(kind)))
    assert (row["kind"], row["target"]) == (kind, target), row
    assert row["workers_seen"] >= 3, row  # Lava's workers were up when the fault came
    assert row["leaked"] == 0, row
    assert row["exit_code"] == code, row
    if target != "deploy" and code > 0:  # the command line: one line, never a traceback
        assert row["stderr_lines"] == 1 and "Traceback" not in row["stderr_last"], row
        assert row["stderr_last"].startswith(f"bso-deploy {target}: "), row
    if kind == "model-exception":  # the crash log holds the worker's own traceback
        logs = [path.read_text() for path in (directory / "logs").glob("crash-*.log")]
        assert any("LavaWorkerError" in text and "injected fault" in text and "the worker's traceback" in text
                   and "neuron_step" in text for text in logs), logs


def test_run_faults_reports_the_totals(one_fault_report, tmp_path):
    report = one_fault_report
    assert report["faults"] == 1 and report["leaked_processes"] == 0 and len(report["rows"]) == 1
    assert report["rows"][0]["kind"] == "sigint" and report["rows"][0]["target"] == "run"
    with pytest.raises(ValueError, match="count must be an integer >= 1"):
        fuzz_lava.run_faults(0, progress=False, directory=tmp_path)
