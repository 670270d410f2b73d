"""Lava faults (issue 15): a Lava run interrupted or failing in every way a user meets, and the Lava worker
processes that outlive it counted (the target: none).

A fault is one target run in a fresh process, in its own session, on a small seeded MLP (a NIR file written
here) and enough samples to keep Lava busy: ``run`` (``bso-deploy run --backend lava``), ``parity``
(``bso-deploy parity --backends sim,lava``) or ``deploy`` (a script that calls the Python API
``bso_deploy.deploy`` and ``LavaNetwork.run``). Once Lava's workers are up (the target has child processes) the
fault is injected:

==================  ========================================================================================
``sigint``          SIGINT to the target alone (``kill -INT``)
``sigint-group``    SIGINT to its whole process group, workers included (Ctrl-C in a terminal)
``sigterm``         SIGTERM to the target alone (``kill``, a job scheduler)
``sigterm-group``   SIGTERM to the process group
``sigkill``         SIGKILL to the target alone: no handler runs (the workers must notice by themselves)
``timeout``         SIGTERM at a random moment from start (compiling included) as ``timeout(1)`` sends it,
                    SIGKILL if the target is still there ``GRACE_SECONDS`` later
``model-exception`` a process model raises inside a Lava worker mid-run (the fixed-point neuron's step
                    function replaced, in the target before Lava forks, by one that fails on its Nth call)
==================  ========================================================================================

Crash logs of internal errors go to ``<directory>/logs``. Then, ``GRACE_SECONDS`` after the target ended,
every process still alive in its session is leaked (a Lava worker reparented to init stays in the session).
:func:`run_faults` returns ``faults``, ``leaked_processes`` and one row per fault (kind, target, exit_code,
workers_seen, leaked, seconds, stderr_lines, stderr_last).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..crash_log import LOG_DIR_VARIABLE

__all__ = ["FAULT_KINDS", "TARGETS", "run_fault", "run_faults", "session_processes"]

FAULT_KINDS = ("sigint", "sigint-group", "sigterm", "sigterm-group", "sigkill", "timeout", "model-exception")
TARGETS = ("run", "parity", "deploy")
SAMPLES = 400  # enough that Lava is still running when a fault comes
TIME_STEPS = 8
GRACE_SECONDS = 20.0  # how long a target may take to clean up after a fault, and its workers to go
START_TIMEOUT_SECONDS = 240.0  # how long Lava may take to fork its workers on a loaded machine
FAILING_CALL = 1000  # model-exception: the neuron step call that raises (mid-run: 4400 steps per neuron)

MODEL_SCRIPT = """
import sys, warnings
import numpy as np, torch
from bso_deploy.export.nir import to_nir, write_nir
from bso_deploy.models import build_mlp
torch.manual_seed(0)
model = build_mlp((16, 24, 24, 5), seed=3).eval()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    write_nir(to_nir(model, dt=1e-3), sys.argv[1])
"""
# The deploy target: the Python API as a user calls it, the NIR file compiled and run on Lava.
DEPLOY_SCRIPT = """
import sys
import numpy as np
from bso_deploy import append_zero_steps, compile_nir, deploy, quantize_inputs
x = np.load(sys.argv[2])
fx_net = compile_nir(sys.argv[1], profile="bso", time_steps=int(sys.argv[3]), calibration=x)
inputs = quantize_inputs(fx_net, np.repeat(x[None], int(sys.argv[3]), axis=0))
with deploy(fx_net) as network:
    network.run(append_zero_steps(inputs, fx_net.latency))
"""
# model-exception: the neuron step of every Lava neuron model fails on its FAILING_CALL-th call; patched in the
# target before Lava forks, so every worker inherits it and the exception is raised inside a process model.
FAILING_STEP = """
import bso_deploy.hardware.lava.arithmetic as arithmetic
_calls, _step = [0], arithmetic.neuron_step
def neuron_step(*args, **kwargs):
    _calls[0] += 1
    if _calls[0] == {call}:
        raise RuntimeError("injected fault: the neuron model failed at call {call}")
    return _step(*args, **kwargs)
arithmetic.neuron_step = neuron_step
"""
CLI_SCRIPT = "import sys\nfrom bso_deploy.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def prepare(directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """The model (model.nir) and SAMPLES seeded inputs in [0, 1] (x.npy) of every fault, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model, inputs = directory / "model.nir", directory / "x.npy"
    if not model.is_file():
        subprocess.run([sys.executable, "-c", MODEL_SCRIPT, str(model)], check=True, capture_output=True)
    np.save(inputs, np.random.default_rng(seed).random((SAMPLES, 16)).astype(np.float32))
    return model, inputs


def target_argv(target: str, kind: str, model: Path, inputs: Path, out: Path) -> list[str]:
    """The target's command line: a fresh interpreter running the CLI or the deploy script."""
    prefix = FAILING_STEP.format(call=FAILING_CALL) if kind == "model-exception" else ""
    if target == "deploy":
        return [sys.executable, "-c", prefix + DEPLOY_SCRIPT, str(model), str(inputs), str(TIME_STEPS)]
    if target == "run":
        args = ["run", str(model), "--backend", "lava", "--out", str(out)]
    elif target == "parity":
        args = ["parity", str(model), "--backends", "sim,lava", "--samples", str(SAMPLES)]
    else:
        raise ValueError(f"unknown fault target {target!r}; valid: {', '.join(TARGETS)}")
    return [sys.executable, "-c", prefix + CLI_SCRIPT, *args, "--inputs", str(inputs), "--time-steps",
            str(TIME_STEPS)]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, session, ...], or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def session_processes(session: int) -> list[int]:
    """The live (not zombie) processes of session ``session``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] != "Z" and int(fields[3]) == session:
                found.append(int(entry))
    return sorted(found)


def children(pid: int) -> list[int]:
    """The live descendants of ``pid`` (recursively; Lava forks its workers from the target)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        below = parents.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def _wait_for_workers(process: subprocess.Popen, minimum: int) -> int:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        count = len(children(process.pid))
        if count >= minimum:
            return count
        time.sleep(0.05)
    return len(children(process.pid)) if process.poll() is None else 0


def _default_signals() -> None:
    """In the target before it starts: SIGINT and SIGTERM at their default actions, as in a terminal. A caller
    started in the background of a non-interactive shell ignores SIGINT, and the target would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _inject(kind: str, process: subprocess.Popen) -> None:
    signals = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL,
               "sigint-group": signal.SIGINT, "sigterm-group": signal.SIGTERM}
    if kind.endswith("-group"):
        os.killpg(process.pid, signals[kind])
    elif kind in signals:
        process.send_signal(signals[kind])


def run_fault(kind: str, target: str, directory: Path, rng: np.random.Generator) -> dict:
    """One fault of ``kind`` injected into ``target`` (module docstring); its row."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; valid: {', '.join(FAULT_KINDS)}")
    model, inputs = prepare(directory)
    argv = target_argv(target, kind, model, inputs, directory / f"{target}-{kind}.npz")
    start = time.monotonic()
    log = directory / f"{target}-{kind}.stderr"
    # stderr to a file, not a pipe: a leaked worker holds its copy open, and reading a pipe would wait for it
    with open(log, "w") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                                   cwd=directory, env={**os.environ, LOG_DIR_VARIABLE: str(directory / "logs")},
                                   preexec_fn=_default_signals)
    session = process.pid
    workers = 0
    try:
        if kind == "timeout":
            time.sleep(float(rng.uniform(1.0, 12.0)))
            workers = len(children(process.pid))
            process.send_signal(signal.SIGTERM)
        else:
            workers = _wait_for_workers(process, minimum=3)
            time.sleep(float(rng.uniform(0.0, 1.5)))  # a random moment of the run
            _inject(kind, process)  # model-exception: the fault comes by itself
        try:
            process.wait(timeout=GRACE_SECONDS if kind != "model-exception" else START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:  # did not end after the fault: what timeout(1) -k does
            process.kill()
            process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + GRACE_SECONDS
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    leaked = session_processes(session)
    for pid in leaked:  # leave the machine clean for the next fault
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return {"kind": kind, "target": target, "exit_code": process.returncode, "workers_seen": workers,
            "leaked": len(leaked), "seconds": round(time.monotonic() - start, 2), "stderr_lines": len(lines),
            "stderr_last": lines[-1][:200] if lines else ""}


def run_faults(count: int, progress: bool, directory: Path | None = None, seed: int = 0) -> dict:
    """``count`` faults, kinds and targets in turn (``len(FAULT_KINDS) * len(TARGETS)`` = 21 covers every pair),
    their files in ``directory`` (default: a temporary directory, removed after); ``{"faults",
    "leaked_processes", "rows"}``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="bso-deploy-lava-faults-") as temporary:
            return run_faults(count, progress, Path(temporary), seed)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        kind = FAULT_KINDS[index % len(FAULT_KINDS)]
        target = TARGETS[(index // len(FAULT_KINDS)) % len(TARGETS)]
        rows.append(run_fault(kind, target, Path(directory), rng))
        if progress:
            row = rows[-1]
            print(f"lava fault {index + 1:3d}/{count}  {kind:15s} {target:7s} exit {row['exit_code']!s:>4}  "
                  f"workers {row['workers_seen']:3d}  leaked {row['leaked']}  {row['seconds']:6.1f} s", flush=True)
    return {"faults": len(rows), "leaked_processes": sum(row["leaked"] for row in rows), "rows": rows}
