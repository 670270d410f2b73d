"""The run-directory lock (bso_deploy/run_lock.py) with real processes: a second holder fails at once naming
the directory and the pid, the OS releases the lock of a killed process, and `bso-deploy train` holds it: a
second `train` on the same --out exits 2 while the first trains, and a run killed with SIGKILL mid-training
resumes (the lock released) to the same weights, optimizer state and metrics as a run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bso_deploy.checkpoint import load_checkpoint
from bso_deploy.cli import main
from bso_deploy.errors import MissingFileError, RunLockedError
from bso_deploy.run_lock import LOCK_NAME, RunLock

COMMAND = Path(sys.executable).with_name("bso-deploy")
HOLD = ("import sys; from bso_deploy.run_lock import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
        "print('locked', flush=True); sys.stdin.read()")
TRAIN = ["train", "--time-steps", "2", "--hidden", "16,16", "--batch-size", "128", "--fixed-point-samples", "0",
         "--no-progress"]


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def holder(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_fails_at_once_naming_the_directory_and_the_pid(tmp_path):
    directory = tmp_path / "run"
    first = holder(directory)
    try:
        start = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"run directory {directory} is being written by another bso-deploy "
                                                 rf"process \(pid {first.pid}\)"):
            RunLock(directory).acquire()
        assert time.monotonic() - start < 1.0  # non-blocking
        assert isinstance(RunLockedError("x"), OSError)
    finally:
        first.kill()
        first.wait()
    with RunLock(directory) as lock:  # SIGKILL: the OS released the lock of the dead process
        assert lock.held and (directory / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert (directory / LOCK_NAME).read_text() == ""  # released: no pid left to mislead a reader


def test_the_lock_is_released_by_the_holder_and_taken_again(tmp_path):
    lock = RunLock(tmp_path / "new" / "deeper")
    lock.acquire()
    with pytest.raises(RuntimeError, match="already held"):
        lock.acquire()
    other = subprocess.run([sys.executable, "-c", "import sys; from bso_deploy.run_lock import RunLock\n"
                            "try:\n    RunLock(sys.argv[1]).acquire()\nexcept OSError as e:\n    print(e)",
                            str(lock.directory)], capture_output=True, text=True, timeout=60)
    assert f"(pid {os.getpid()})" in other.stdout
    lock.release()
    lock.release()  # idempotent
    assert not lock.held and RunLock(lock.directory).acquire().held


def test_without_create_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        RunLock(tmp_path / "missing", create=False).acquire()
    assert not (tmp_path / "missing").exists()


def train(out: Path, *args: str, background: bool = False) -> subprocess.Popen | subprocess.CompletedProcess:
    argv = [str(COMMAND), *TRAIN, "--out", str(out), *args]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def same_run(expected: dict, got: dict) -> None:
    """The checkpoints of two runs hold the same tensors (weights, optimizer state, RNG) and the same history
    but for the seconds."""
    def compare(a, b, where: str) -> None:
        assert type(a) is type(b), where
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), where
        elif isinstance(a, dict):
            assert a.keys() == b.keys(), where
            for key in a:
                if key != "seconds":
                    compare(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b), where
            for index, (x, y) in enumerate(zip(a, b)):
                compare(x, y, f"{where}[{index}]")
        else:
            assert a == b, where
    compare(expected, got, "checkpoint")


def train_in_process(out: Path, capsys, *args: str) -> tuple[int, list[str]]:
    """``bso-deploy train`` in this process (another process than the one holding the lock): (exit code, stderr
    lines)."""
    capsys.readouterr()
    code = main([*TRAIN, "--out", str(out), *args])
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.slow
def test_train_locks_its_out_and_a_killed_run_resumes_exactly(tmp_path, capsys):
    out, straight_out = tmp_path / "killed", tmp_path / "straight"
    first = train(out, "--epochs", "30", background=True)
    # The run never interrupted, side by side with the first (2 cores), through the same command (the same
    # process settings, threads included). The first is killed once its epoch 1 is saved: done is 1 but for a
    # kill that comes an epoch late, for which another straight run is made below.
    straight = train(straight_out, "--epochs", "2", background=True)
    try:
        wait_for(lambda: (out / LOCK_NAME).is_file() and (out / LOCK_NAME).read_text().strip().isdigit(),
                 what="the first train to lock its --out")
        # The refusals run in this process: the lock is the first train's, a process of its own; the exit code
        # and the one line are main's (the console script's boundary is tests/test_cli_errors.py's).
        code, lines = train_in_process(out, capsys, "--epochs", "1")
        assert code == 2 and len(lines) == 1, lines
        assert lines[0] == (f"bso-deploy train: error: run directory {out} is being written by another bso-deploy "
                            f"process (pid {first.pid}); wait for it to finish or give another --out")
        code, lines = train_in_process(out, capsys, "--resume", "--epochs", "1")  # --resume waits for no one either
        assert code == 2 and len(lines) == 1 and "is being written by another" in lines[0], lines
        wait_for(lambda: (out / "checkpoint.pt").is_file(), timeout=300, what="the first epoch's checkpoint")
        first.send_signal(signal.SIGKILL)  # mid-training, no handler runs: only the OS can release the lock
        first.wait(timeout=60)
    finally:
        first.kill()
        first.communicate()
    done = load_checkpoint(out / "checkpoint.pt")["epoch"]
    assert 1 <= done < 30
    epochs = str(done + 1)
    if done != 1:
        assert straight.wait(timeout=600) == 0, straight.communicate()[1]
        straight_out = tmp_path / f"straight-{epochs}"
        straight = train(straight_out, "--epochs", epochs, background=True)
    resumed = train(out, "--resume", "--epochs", epochs)
    assert resumed.returncode == 0, resumed.stderr
    assert straight.wait(timeout=600) == 0, straight.communicate()[1]
    same_run(load_checkpoint(straight_out / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt"))
    metrics = [json.loads((path / "metrics.json").read_text()) for path in (straight_out, out)]
    assert [e["loss"] for e in metrics[0]["epochs"]] == [e["loss"] for e in metrics[1]["epochs"]]
    assert metrics[1]["completed_epochs"] == done + 1 and (out / LOCK_NAME).read_text() == ""
