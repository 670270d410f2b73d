"""`bso-deploy train` under torchrun with 2 CPU processes (gloo on loopback): identical replicas, and the
rank-0 checkpoint resumes in a single process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from bso_deploy.run import TrainingRun

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_take_identical_steps_and_checkpoint_resumes(tmp_path):
    out = tmp_path / "run"
    train_args = ["train", "--method", "tbso", "--epochs", "2", "--time-steps", "2", "--hidden", "16,16",
                  "--batch-size", "64", "--out", str(out), "--no-progress"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path),
               *train_args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert any(k.startswith("binary.") and k.endswith("momentum") for k in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    resumed = TrainingRun.resume(out, epochs=3)
    assert resumed.epoch == 2
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, rank0[f"model.{key}"]), key
    binary_state = resumed.optimizers.binary.state[resumed.optimizers.binary.param_groups[0]["params"][0]]
    assert torch.equal(binary_state["momentum"], rank0["binary.0.momentum"])
    resumed.fit(progress=False)
    assert resumed.epoch == 3 and resumed.history[-1]["test_accuracy"] > 0.5
