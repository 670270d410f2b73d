"""Event data through ``bso-deploy compile`` and ``parity`` (issue 13): networks trained on synthetic N-MNIST and
DVS Gesture files written in each data set's own format (the writers of test_event_data.py). The counts reach
the fixed-point network unscaled (input scale 1) up to the training split's largest count, computed here from
the events written; larger test counts are clipped and counted, never silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require
from test_event_data import (
    GESTURE_SENSOR,
    NMNIST_SENSOR,
    atis_records,
    expected_frames,
    synthetic_nmnist,
    write_gesture,
    write_nmnist,
)

from bso_deploy.cli import main
from bso_deploy.config import TrainConfig
from bso_deploy.run import TrainingRun

TIME_STEPS = 4
pytestmark = pytest.mark.filterwarnings("ignore::bso_deploy.export.nir.export.NIRExportWarning")


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def trained_graph(tmp: Path, config: TrainConfig) -> Path:
    """Train ``config`` (1 epoch) and export its checkpoint with ``bso-deploy export`` (metadata: data set, T)."""
    run = TrainingRun.create(config, tmp / "run")
    run.fit(progress=False, plot=False)
    graph = tmp / "net.nir"
    assert main(["export", str(tmp / "run" / "checkpoint.pt"), "--out", str(graph)]) == 0
    return graph


@pytest.fixture(scope="module")
def nmnist(tmp_path_factory) -> dict:
    """A tiny MLP trained on 20 synthetic N-MNIST recordings; one extra test recording has a pixel far busier
    than any training pixel."""
    require("tonic")
    tmp = tmp_path_factory.mktemp("nmnist")
    data = tmp / "data"
    written = synthetic_nmnist(data, {"Train": 20, "Test": 9}, learnable=True)
    busy = (np.full(400, 3), np.full(400, 4), np.ones(400, dtype=np.int64), np.arange(400) * 10)
    path = write_nmnist(data, "Test", 9, "99999", atis_records(*busy))
    written[path] = busy
    frames = {p: expected_frames(*events, TIME_STEPS, NMNIST_SENSOR) for p, events in written.items()}
    train = [f for p, f in frames.items() if p.parts[-3] == "Train"]
    test = [frames[p] for p in sorted(p for p in frames if p.parts[-3] == "Test")]  # the loader's order
    largest = int(max(f.max() for f in train))
    config = TrainConfig(dataset="nmnist", data_root=str(data), epochs=1, batch_size=5, time_steps=TIME_STEPS,
                         hidden=(16, 16), fixed_point_samples=0)
    over = int(sum(np.count_nonzero(f > largest) for f in test))
    assert largest > 1 and over > 0  # graded counts, and test counts above the training split's largest
    return {"data": data, "graph": trained_graph(tmp, config), "largest": largest, "over": over, "tmp": tmp}


def test_compile_takes_the_training_splits_largest_count_as_input_range(nmnist, capsys):
    out = nmnist["tmp"] / "compiled.npz"
    assert main(["compile", str(nmnist["graph"]), "--out", str(out), "--data-root", str(nmnist["data"])]) == 0
    printed = last_json(capsys)
    assert (printed["input_scale"], printed["input_max"], printed["time_steps"]) == (1.0, nmnist["largest"], 4)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["event_data"] == {"dataset": "nmnist", "time_steps": 4, "largest_training_count": nmnist["largest"],
                                    "input_scale": 1.0, "input_range": float(nmnist["largest"])}


def test_parity_on_event_data_counts_every_clipped_input(nmnist, capsys):
    """No --dataset, no --time-steps: both come from the graph's metadata."""
    assert main(["parity", str(nmnist["graph"]), "--data-root", str(nmnist["data"]), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert (report["mismatches"], report["samples"]) == (0, 10)
    assert report["input_clipped"] == nmnist["over"]
    assert report["event_data"]["largest_training_count"] == nmnist["largest"]
    assert "clip" in captured.err  # the warning: never silent
    assert report["prediction_agreement"] is not None


def test_parity_with_the_full_input_range_clips_nothing(nmnist, capsys):
    assert main(["parity", str(nmnist["graph"]), "--data-root", str(nmnist["data"]), "--input-range", "255",
                 "--json"]) == 0
    report = last_json(capsys)
    assert (report["mismatches"], report["input_clipped"]) == (0, 0)
    assert report["event_data"]["largest_training_count"] is None  # given: the training split is not read


def test_parity_of_a_compiled_network_needs_the_frames_per_sample(nmnist, capsys):
    out = nmnist["tmp"] / "for_parity.npz"
    assert main(["compile", str(nmnist["graph"]), "--out", str(out), "--data-root", str(nmnist["data"])]) == 0
    capsys.readouterr()
    args = ["parity", str(out), "--dataset", "nmnist", "--data-root", str(nmnist["data"])]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bso-deploy parity: error: --dataset nmnist bins each recording") and "\n" not in error
    assert main([*args, "--time-steps", "4", "--json"]) == 0
    report = last_json(capsys)
    assert (report["mismatches"], report["samples"], report["input_clipped"]) == (0, 10, nmnist["over"])


def test_compile_without_the_data_names_the_way_out(nmnist, tmp_path, capsys):
    out = tmp_path / "net.npz"
    args = ["compile", str(nmnist["graph"]), "--out", str(out), "--data-root", str(tmp_path / "none")]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert "--input-range N" in error and "\n" not in error and not out.exists()
    assert main([*args, "--input-range", "7"]) == 0
    assert (last_json(capsys)["input_scale"], json.loads(out.with_suffix(".json").read_text())["input_max"]) == (1, 7)


def test_dvsgesture_graph_compiles_and_matches_across_backends(tmp_path, capsys):
    require("tonic")
    data = tmp_path / "data"
    rng = np.random.default_rng(3)
    frames = {}
    for split, count in (("ibmGestureTrain", 6), ("ibmGestureTest", 4)):
        for index in range(count):
            n = 500
            columns = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                                np.sort(rng.integers(0, 3000, n))], axis=1)
            columns[: n // 4, :3] = (20, 30, 1)  # a busy pixel: counts above 1
            label = index % 11
            write_gesture(data, split, index, label, columns)
            frames[(split, index)] = expected_frames(columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3] * 1000,
                                                     3, GESTURE_SENSOR)
    largest = int(max(f.max() for (split, _), f in frames.items() if split == "ibmGestureTrain"))
    config = TrainConfig(dataset="dvsgesture", data_root=str(data), epochs=1, batch_size=3, time_steps=3,
                         hidden=(8, 8), fixed_point_samples=0)
    graph = trained_graph(tmp_path, config)
    out = tmp_path / "gesture.npz"
    assert main(["compile", str(graph), "--out", str(out), "--dataset", "dvsgesture", "--data-root", str(data)]) == 0
    assert (last_json(capsys)["input_max"]) == largest > 1
    assert main(["parity", str(graph), "--dataset", "dvsgesture", "--time-steps", "3", "--data-root", str(data),
                 "--json"]) == 0
    report = last_json(capsys)
    over = int(sum(np.count_nonzero(f > largest) for (split, _), f in frames.items() if split == "ibmGestureTest"))
    assert (report["mismatches"], report["samples"], report["input_clipped"]) == (0, 4, over)
