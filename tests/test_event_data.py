"""Event data sets (bso_deploy.event_data): synthetic files written here in each data set's own format, read back
through load_dataset, and compared with frames counted independently of tonic; bad files; end to end."""

from __future__ import annotations

import builtins
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from bso_deploy.export.nir import to_nir
from bso_deploy.hardware.backends import run_fixed
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.parity import check_parity
from conftest import require

from bso_deploy.config import TrainConfig
from bso_deploy.data import load_dataset, make_loaders
from bso_deploy.encoding import make_encoder
from bso_deploy.event_data import EVENT_LAYOUTS, load_event_data
from bso_deploy.extras import MissingExtraError
from bso_deploy.run import TrainingRun

NMNIST_SENSOR = (34, 34, 2)  # (W, H, P), from the N-MNIST paper (Orchard et al. 2015)
GESTURE_SENSOR = (128, 128, 2)  # DVS128


@pytest.fixture(scope="module", autouse=True)
def tonic():
    """Every test here reads through tonic (the events extra): skip on a laptop without it, fail under CI."""
    return require("tonic")


def atis_records(x, y, p, t) -> bytes:
    """Our own encoder of N-MNIST's 40-bit ATIS records: x, y, then polarity in bit 23 and the timestamp (µs)
    in bits 22..0, most significant byte first."""
    out = bytearray()
    for xi, yi, pi, ti in zip(x, y, p, t, strict=True):
        assert 0 <= ti < 1 << 23 and pi in (0, 1) and 0 <= xi < 256 and 0 <= yi < 256
        word = (pi << 23) | ti
        out += bytes([xi, yi, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF])
    return bytes(out)


def random_events(rng: np.random.Generator, count: int, sensor: tuple[int, int, int], duration: int,
                  hot_pixel: bool = True):
    """count events in time order on the sensor; one pixel fires often so that counts exceed 1."""
    width, height, polarities = sensor
    x = rng.integers(0, width, count)
    y = rng.integers(0, height, count)
    p = rng.integers(0, polarities, count)
    if hot_pixel:
        x[: count // 3], y[: count // 3], p[: count // 3] = 5, 7, 1
    t = np.sort(rng.integers(0, duration, count))
    return x, y, p, t


def expected_frames(x, y, p, t, time_steps: int, sensor: tuple[int, int, int]) -> np.ndarray:
    """Counts per (frame, polarity, y, x), computed here: w = (t_last - t_0) // T, frame k = (t - t_0) // w,
    events with k >= T dropped (tonic's time bins, overlap 0)."""
    width, height, polarities = sensor
    frames = np.zeros((time_steps, polarities, height, width), dtype=np.float32)
    t = np.asarray(t, dtype=np.int64)
    window = (t[-1] - t[0]) // time_steps
    if window == 0:
        return frames
    for xi, yi, pi, ti in zip(x, y, p, t, strict=True):
        k = (ti - t[0]) // window
        if k < time_steps:
            frames[k, pi, yi, xi] += 1
    return frames


def write_nmnist(root: Path, split: str, digit: int, name: str, records: bytes) -> Path:
    path = root / "NMNIST" / split / str(digit) / f"{name}.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(records)
    return path


def write_gesture(root: Path, split: str, user: int, label: int, columns: np.ndarray) -> Path:
    path = root / "DVSGesture" / split / f"user{user:02d}_natural" / f"{label}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, columns)
    return path


def synthetic_nmnist(root: Path, per_split: dict[str, int], seed: int = 0, events: int = 300,
                     learnable: bool = False) -> dict[Path, tuple]:
    """Write per_split[split] N-MNIST files (labels cycling 0..9); returns path -> (x, y, p, t). With
    ``learnable`` each digit's events come from its own 6-pixel column band, so a small MLP can learn them."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in per_split.items():
        for index in range(count):
            digit = index % 10
            x, y, p, t = random_events(rng, events, NMNIST_SENSOR, duration=300_000)
            if learnable:
                x = rng.integers(3 * digit, 3 * digit + 4, events)
            written[write_nmnist(root, split, digit, f"{index:05d}", atis_records(x, y, p, t))] = (x, y, p, t)
    return written


def test_nmnist_frames_are_the_counts_computed_independently(tmp_path):
    written = synthetic_nmnist(tmp_path, {"Train": 12, "Test": 10})
    split = load_dataset("nmnist", root=tmp_path, time_steps=4)
    assert (split.input_shape, split.num_classes, split.name) == ((2, 34, 34), 10, "nmnist")
    assert (len(split.train), len(split.test)) == (12, 10)
    for dataset in (split.train, split.test):
        for index in range(len(dataset)):
            frames, label = dataset[index]
            path = dataset.files[index]
            assert frames.dtype == torch.float32 and frames.shape == (4, 2, 34, 34)
            assert int(label) == int(path.parent.name)
            np.testing.assert_array_equal(frames.numpy(), expected_frames(*written[path], 4, NMNIST_SENSOR))
    frames, _ = split.train[0]
    assert frames.max() > 1  # graded inputs: the hot pixel fires many times per frame
    assert torch.equal(frames, frames.round())


def test_nmnist_time_steps_set_the_number_of_frames(tmp_path):
    written = synthetic_nmnist(tmp_path, {"Train": 1, "Test": 1})
    for time_steps in (1, 3, 7):
        train, _ = load_event_data("nmnist", tmp_path, time_steps)
        frames, _ = train[0]
        np.testing.assert_array_equal(frames.numpy(), expected_frames(*written[train.files[0]], time_steps,
                                                                      NMNIST_SENSOR))


def test_nmnist_overflow_records_are_not_events(tmp_path):
    x, y, p, t = [1, 2, 3, 4], [1, 2, 3, 4], [0, 1, 0, 1], [0, 10, 20, 40]
    records = atis_records(x[:2], y[:2], p[:2], t[:2]) + bytes([0, 240, 0, 0, 0]) + atis_records(x[2:], y[2:], p[2:],
                                                                                                  t[2:])
    write_nmnist(tmp_path, "Train", 3, "a", records)
    write_nmnist(tmp_path, "Test", 3, "a", atis_records(x, y, p, t))
    split = load_dataset("nmnist", root=tmp_path, time_steps=2)
    frames, _ = split.train[0]
    assert frames.sum() == 3  # 4 events, the last one on the edge of the second bin (tonic's rule); no overflow


def test_truncated_nmnist_record_is_a_clear_error_at_load(tmp_path):
    synthetic_nmnist(tmp_path, {"Train": 3, "Test": 3})
    bad = write_nmnist(tmp_path, "Train", 4, "bad", atis_records([1, 2], [1, 2], [0, 1], [5, 9])[:-2])
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=r"bad\.bin: 8 bytes is not a whole number of 5-byte ATIS records"):
        load_dataset("nmnist", root=tmp_path, time_steps=4)
    assert sorted(tmp_path.rglob("*")) == before and bad.stat().st_size == 8


@pytest.mark.parametrize(("field", "value"), [("x", 34), ("y", 34), ("x", 200)])
def test_nmnist_event_outside_the_sensor_is_a_clear_error(tmp_path, field, value):
    synthetic_nmnist(tmp_path, {"Train": 1, "Test": 1})
    coordinates = {"x": [1, 2, 3], "y": [4, 5, 6]}
    coordinates[field][1] = value
    write_nmnist(tmp_path, "Train", 0, "zz_bad", atis_records(coordinates["x"], coordinates["y"], [0, 1, 0], [0, 5, 9]))
    before = sorted(tmp_path.rglob("*"))
    train, _ = load_event_data("nmnist", tmp_path, 2)
    message = rf"zz_bad\.bin: event 1 has {field} = {value}, outside the sensor's \[0, 34\)"
    with pytest.raises(ValueError, match=message):
        train[len(train) - 1]
    assert sorted(tmp_path.rglob("*")) == before


def test_nmnist_events_out_of_time_order_are_a_clear_error(tmp_path):
    write_nmnist(tmp_path, "Train", 1, "a", atis_records([1, 2, 3], [1, 2, 3], [0, 0, 0], [0, 50, 20]))
    write_nmnist(tmp_path, "Test", 1, "a", atis_records([1], [1], [0], [0]))
    train, _ = load_event_data("nmnist", tmp_path, 2)
    with pytest.raises(ValueError, match="event 2 has timestamp 20 before its predecessor's 50"):
        train[0]


def test_missing_event_folder_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"NMNIST/Train is missing; expected .*NMNIST/\{Train,Test\}/"
                                                r"<digit 0-9>/\*\.bin\. Nothing is downloaded"):
        load_dataset("nmnist", root=tmp_path, time_steps=4)
    synthetic_nmnist(tmp_path, {"Train": 2})
    with pytest.raises(FileNotFoundError, match=r"NMNIST/Test is missing"):
        load_dataset("nmnist", root=tmp_path, time_steps=4)
    (tmp_path / "NMNIST" / "Test").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.bin recordings in .*NMNIST/Test"):
        load_dataset("nmnist", root=tmp_path, time_steps=4)
    with pytest.raises(FileNotFoundError, match=r"DVSGesture/ibmGestureTrain is missing; expected .*"
                                                r"user<NN>_<lighting>/<label 0-10>\.npy"):
        load_dataset("dvsgesture", root=tmp_path, time_steps=4)
    assert not list(tmp_path.glob("DVSGesture*"))


def test_bad_label_folder_and_missing_time_steps_are_clear_errors(tmp_path):
    synthetic_nmnist(tmp_path, {"Train": 1, "Test": 1})
    with pytest.raises(TypeError, match="event data sets need time_steps"):
        load_dataset("nmnist", root=tmp_path)
    write_nmnist(tmp_path, "Train", 12, "a", atis_records([1], [1], [0], [0]))
    with pytest.raises(ValueError, match=r"its label '12' \(from the path\) is not a class in \[0, 10\)"):
        load_dataset("nmnist", root=tmp_path, time_steps=4)


def test_dvsgesture_frames_are_the_counts_computed_independently(tmp_path):
    rng = np.random.default_rng(1)
    written = {}
    for split, count in (("ibmGestureTrain", 6), ("ibmGestureTest", 3)):
        for index in range(count):
            x, y, p, t_ms = random_events(rng, 500, GESTURE_SENSOR, duration=6000)
            columns = np.stack([x, y, p, t_ms], axis=1).astype(np.int64)
            written[write_gesture(tmp_path, split, index + 1, index % 11, columns)] = (x, y, p, t_ms * 1000)
    split = load_dataset("dvsgesture", root=tmp_path, time_steps=5)
    assert (split.input_shape, split.num_classes) == ((2, 128, 128), 11)
    for dataset in (split.train, split.test):
        for index in range(len(dataset)):
            frames, label = dataset[index]
            assert int(label) == int(dataset.files[index].stem)
            np.testing.assert_array_equal(frames.numpy(),
                                          expected_frames(*written[dataset.files[index]], 5, GESTURE_SENSOR))


def test_dvsgesture_bad_files_are_clear_errors(tmp_path):
    good = np.array([[1, 2, 0, 0], [3, 4, 1, 10]], dtype=np.int64)
    write_gesture(tmp_path, "ibmGestureTest", 1, 0, good)
    write_gesture(tmp_path, "ibmGestureTrain", 1, 0, good[:, :3])
    with pytest.raises(ValueError, match=r"0\.npy: a DVS Gesture file holds a numeric \(N, 4\) array"):
        load_dataset("dvsgesture", root=tmp_path, time_steps=2)
    write_gesture(tmp_path, "ibmGestureTrain", 1, 0, np.array([[1, 128, 0, 0], [3, 4, 1, 10]]))
    train, _ = load_event_data("dvsgesture", tmp_path, 2)
    with pytest.raises(ValueError, match=r"event 0 has y = 128, outside the sensor's \[0, 128\)"):
        train[0]
    write_gesture(tmp_path, "ibmGestureTrain", 1, 0, np.array([[1, 2, 2, 0], [3, 4, 1, 10]]))
    with pytest.raises(ValueError, match=r"polarities must be 0 or 1"):
        train[0]
    write_gesture(tmp_path, "ibmGestureTrain", 1, 0, np.array([[1.5, 2, 0, 0], [3, 4, 1, 10]]))
    with pytest.raises(ValueError, match="must be integers"):
        train[0]


def test_without_tonic_the_events_extra_is_named(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tonic(name, *args, **kwargs):
        if name == "tonic" or name.startswith("tonic."):
            raise ImportError("No module named 'tonic'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tonic)
    with pytest.raises(MissingExtraError, match=r"needs tonic: pip install 'bso-deploy\[events\]'"):
        load_dataset("nmnist", root=tmp_path, time_steps=4)


def test_event_layouts_match_tonic(tonic):
    assert EVENT_LAYOUTS["nmnist"].sensor_size == tuple(tonic.datasets.NMNIST.sensor_size) == NMNIST_SENSOR
    assert EVENT_LAYOUTS["dvsgesture"].sensor_size == tuple(tonic.datasets.DVSGesture.sensor_size)
    assert EVENT_LAYOUTS["dvsgesture"].num_classes == len(tonic.datasets.DVSGesture.classes)
    assert EVENT_LAYOUTS["nmnist"].split_folders == (tonic.datasets.NMNIST.train_folder,
                                                     tonic.datasets.NMNIST.test_folder)


def test_loader_batches_feed_frame_t_at_step_t(tmp_path):
    synthetic_nmnist(tmp_path, {"Train": 8, "Test": 4})
    split = load_dataset("nmnist", root=tmp_path, time_steps=3)
    train_loader, _ = make_loaders(split, batch_size=4, seed=0)
    x, _ = next(iter(train_loader))
    assert x.shape == (4, 3, 2, 34, 34)
    encoder = make_encoder("frames")
    for t in range(3):
        assert torch.equal(encoder(x, t), x[:, t])


def test_event_data_sets_take_the_frames_encoder():
    assert TrainConfig(dataset="nmnist").encoder == "frames"  # chosen for event data (the default "direct")
    assert TrainConfig(dataset="dvsgesture", encoder="frames").encoder == "frames"
    config = TrainConfig(dataset="nmnist")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="encoder 'rate' does not fit data set 'nmnist'"):
        TrainConfig(dataset="nmnist", encoder="rate")
    with pytest.raises(ValueError, match="encoder 'frames' does not fit data set 'digits'"):
        TrainConfig(encoder="frames")
    assert TrainConfig().encoder == "direct"  # static data sets keep their encoders


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bso_deploy.export.nir.export.NIRExportWarning")  # the subtractive reset
def test_train_one_epoch_and_deploy_event_frames_end_to_end(tmp_path):
    """Train 1 epoch on 40 synthetic N-MNIST samples (MLP), then export -> compile (calibrated on the event
    counts: scale 1) -> simulator and torch reference: 0 mismatches, 0 clipped inputs."""
    data = tmp_path / "data"
    synthetic_nmnist(data, {"Train": 40, "Test": 20}, learnable=True)
    config = TrainConfig(dataset="nmnist", data_root=str(data), epochs=1, batch_size=8, time_steps=4,
                         hidden=(32, 32), fixed_point_samples=20)
    assert config.encoder == "frames"
    run = TrainingRun.create(config, tmp_path / "run")
    metrics = run.fit(progress=False, plot=False)
    test_x = torch.stack([run.split.test[i][0] for i in range(len(run.split.test))])  # (N, T, P, H, W)
    train_x = torch.stack([run.split.train[i][0] for i in range(len(run.split.train))])
    fixed = metrics["fixed_point"]
    assert "skipped" not in fixed, fixed
    assert run.integer_range() == run.split.train.largest_count == int(train_x.max())  # the range: training data's
    over_training_range = int((test_x > train_x.max()).sum())
    assert fixed["clipped_inputs"] == over_training_range and fixed["samples"] == 20  # counted, never silent
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["encoder"] == "frames"

    inputs = test_x.transpose(0, 1).numpy()  # (T, N, P, H, W): frame t at step t
    calibration = train_x.transpose(0, 1).numpy()
    assert calibration.max() > 1  # graded counts
    graph = to_nir(run.model.eval(), input_shape=run.split.input_shape)
    calibrated = compile_nir(graph, profile="bso", time_steps=4, calibration=calibration)
    assert (calibrated.input_scale, calibrated.input_max) == (1.0, int(calibration.max()))  # integers kept (§10.1)
    over = int(np.count_nonzero(inputs > calibrated.input_max))  # test counts above the training maximum
    assert over > 0
    assert run_fixed(calibrated, "sim", inputs).input_clipped == over  # counted, never silent
    # the full 8-bit input range keeps every count up to 255 (what the training run's fixed-point figures use)
    fx_net = compile_nir(graph, profile="bso", time_steps=4, calibration=calibration, input_range=255.0)
    assert (fx_net.input_scale, fx_net.input_max) == (1.0, 255) and inputs.max() <= 255
    assert run_fixed(fx_net, "sim", inputs).input_clipped == 0
    labels = np.array([int(run.split.test[i][1]) for i in range(len(run.split.test))])
    report = check_parity(fx_net, backends=("sim", "torch"), inputs=inputs, labels=labels)
    assert (report.mismatches, report.samples, report.input_clipped) == (0, 20, 0)
    float_report = check_parity(graph, backends=("sim", "torch"), inputs=inputs, labels=labels, profile="bso",
                                time_steps=4, calibration=calibration, input_range=255.0)
    assert (float_report.mismatches, float_report.input_clipped) == (0, 0)
    assert float_report.prediction_agreement is not None
    assert os.path.isfile(tmp_path / "run" / "checkpoint.pt")


@pytest.mark.slow
def test_hardware_aware_training_feeds_the_counts_unscaled(tmp_path):
    """The integer forward of hardware-aware training compiles event counts with input scale 1 and the training
    data's largest count: its predictions are the simulator's (agreement 1.0)."""
    data = tmp_path / "data"
    synthetic_nmnist(data, {"Train": 16, "Test": 8}, learnable=True)
    config = TrainConfig(dataset="nmnist", data_root=str(data), epochs=1, batch_size=8, time_steps=3,
                         hidden=(16, 16), hardware_aware=True, hardware_aware_epochs=1, fixed_point_samples=8)
    run = TrainingRun.create(config, tmp_path / "run")
    metrics = run.fit(progress=False, plot=False)
    fixed = metrics["fixed_point"]
    assert metrics["epochs"][0]["hardware_aware"] is True
    assert (fixed["integer_forward_agreement"], fixed["samples"]) == (1.0, 8)
    test_x = torch.stack([run.split.test[i][0] for i in range(len(run.split.test))])
    assert fixed["clipped_inputs"] == int((test_x > run.split.train.largest_count).sum())


def test_largest_count_reads_every_sample_once(tmp_path):
    written = synthetic_nmnist(tmp_path, {"Train": 5, "Test": 1})
    train, _ = load_event_data("nmnist", tmp_path, 2)
    expected = max(int(expected_frames(*written[path], 2, NMNIST_SENSOR).max()) for path in train.files)
    assert train.largest_count == expected > 1
    train.files[0].unlink()  # cached: not read again
    assert train.largest_count == expected


def test_event_datasets_pickle_for_dataloader_workers(tmp_path):
    synthetic_nmnist(tmp_path, {"Train": 2, "Test": 1})
    train, _ = load_event_data("nmnist", tmp_path, 2)
    copy = pickle.loads(pickle.dumps(train))  # spawned DataLoader workers receive the data set pickled
    assert torch.equal(copy[1][0], train[1][0]) and int(copy[1][1]) == int(train[1][1])
