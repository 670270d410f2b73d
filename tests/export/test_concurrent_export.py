"""Exports to the same path from several processes at once never interleave (bso_deploy/io.py's atomic replace):
real processes export two different checkpoints to one NIR (and one ONNX) path in a loop, started together,
while this process reads the path again and again; every read is one complete valid file equal to one of the
two exports, the last file too, and no temporary file is left. Then two `bso-deploy export` commands at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require

from bso_deploy.checkpoint import model_payload, save_checkpoint
from bso_deploy.config import TrainConfig
from bso_deploy.training import build_network

COMMAND = Path(sys.executable).with_name("bso-deploy")
ROUNDS = 10
WRITER = """
import sys
from bso_deploy.export.nir import export_checkpoint_to_nir
from bso_deploy.export.onnx import export_checkpoint_to_onnx
export = {"nir": export_checkpoint_to_nir, "onnx": export_checkpoint_to_onnx}[sys.argv[1]]
checkpoint, out, rounds = sys.argv[2], sys.argv[3], int(sys.argv[4])
export(checkpoint, out + ".warm")  # imports and first-call costs paid before the start signal
print("ready", flush=True)
sys.stdin.readline()
for _ in range(rounds):
    export(checkpoint, out)
"""


def checkpoint(path: Path, hidden: tuple[int, ...], seed: int, epoch: int) -> Path:
    torch.manual_seed(seed)
    config = TrainConfig(dataset="digits", hidden=hidden, reset="zero", method="tbso", seed=seed)
    model = build_network(config, (64,), 10)
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": epoch, "optimizers": {}, "history": []}
    return save_checkpoint(path, payload)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("checkpoints")
    return (checkpoint(directory / "a.pt", (16, 12), seed=1, epoch=5),
            checkpoint(directory / "b.pt", (24, 8), seed=2, epoch=7))


def canonical(value):
    """A value of a NIR node as plain comparable data: arrays as (dtype, shape, bytes), dicts recursively."""
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    array = np.asarray(value)
    if array.dtype == object:
        return repr(value)
    return (array.dtype.str, array.shape, array.tobytes())


def nir_content(path: Path) -> dict:
    """Every node's fields and the edges of a NIR file (nir.read fails on a partial file)."""
    nir = require("nir")
    graph = nir.read(str(path))
    return {"nodes": {name: canonical({key: value for key, value in vars(node).items() if not key.startswith("_")})
                      for name, node in graph.nodes.items()},
            "edges": sorted(map(tuple, graph.edges)), "metadata": canonical(dict(graph.metadata))}


def same_nir(a: dict, b: dict) -> bool:
    return a == b


def onnx_content(path: Path) -> bytes:
    onnx = require("onnx")
    data = path.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data))  # a partial file fails here
    return data


def which(content, expected: list, equal) -> int:
    matches = [index for index, candidate in enumerate(expected) if equal(content, candidate)]
    assert len(matches) == 1, "the file is neither export (interleaved or partial)"
    return matches[0]


@pytest.mark.parametrize("kind", ["nir", "onnx"])
def test_concurrent_exporting_processes_never_interleave(tmp_path, checkpoints, kind):
    require("onnx" if kind == "onnx" else "nir")
    read, equal = (nir_content, same_nir) if kind == "nir" else (onnx_content, bytes.__eq__)
    out = tmp_path / "shared" / f"model.{kind}"
    out.parent.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, kind, str(path), str(out), str(ROUNDS)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for path in checkpoints]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready"
        expected = [read(path) for path in _alone(tmp_path, checkpoints, kind)]
        assert not equal(expected[0], expected[1])
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        seen = [0, 0]
        while any(writer.poll() is None for writer in writers):
            if out.exists():
                seen[which(read(out), expected, equal)] += 1
        assert [writer.wait() for writer in writers] == [0, 0]
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    which(read(out), expected, equal)
    assert sum(seen) > 0
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == [f"model.{kind}", f"model.{kind}.warm"], left  # no temporary file left behind


def _alone(tmp_path: Path, checkpoints: tuple[Path, Path], kind: str) -> list[Path]:
    """Each checkpoint exported alone, in this process: what a complete file of each writer holds."""
    nir_io = require("bso_deploy.export.nir")
    onnx_io = require("bso_deploy.export.onnx")
    export = nir_io.export_checkpoint_to_nir if kind == "nir" else onnx_io.export_checkpoint_to_onnx
    paths = [tmp_path / f"alone-{index}.{kind}" for index in range(len(checkpoints))]
    for path, source in zip(paths, checkpoints):
        export(source, path)
    return paths


@pytest.mark.parametrize("kind", ["nir", "onnx"])
def test_two_export_commands_at_once_leave_one_complete_file(tmp_path, checkpoints, kind):
    require("onnx" if kind == "onnx" else "nir")
    read, equal = (nir_content, same_nir) if kind == "nir" else (onnx_content, bytes.__eq__)
    out = tmp_path / "out" / f"model.{kind}"
    commands = [subprocess.Popen([str(COMMAND), "export", str(path), "--format", kind, "--out", str(out)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for path in checkpoints]
    results = [command.communicate(timeout=300) for command in commands]
    assert [command.returncode for command in commands] == [0, 0], results
    which(read(out), [read(path) for path in _alone(tmp_path, checkpoints, kind)], equal)
    assert [p.name for p in out.parent.iterdir()] == [out.name]
