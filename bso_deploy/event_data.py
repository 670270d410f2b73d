"""Event-camera data sets read from local files through tonic, binned into frames of event counts.

Nothing is downloaded (tonic's dataset classes would): the files are read with tonic's own readers and binned
with tonic's ``ToFrame(sensor_size, n_time_bins=T)``. Layouts under the data root (as tonic lays them out):

    <root>/NMNIST/{Train,Test}/<digit 0-9>/*.bin          N-MNIST (Orchard et al. 2015), the original files
    <root>/DVSGesture/{ibmGestureTrain,ibmGestureTest}/user<NN>_<lighting>/<label 0-10>.npy
                                                          DVS Gesture (Amir et al. 2017), tonic's preprocessed
                                                          version: one gesture per file

N-MNIST files are sequences of 5-byte ATIS records, 40 bits each, most significant byte first:

    byte 0: x (0..33)   byte 1: y (0..33; 240 marks a timestamp overflow, not an event)
    byte 2: bit 7 polarity (1 on, 0 off), bits 6..0 timestamp bits 22..16
    byte 3: timestamp bits 15..8   byte 4: timestamp bits 7..0      (timestamp in microseconds)

DVS Gesture files hold an (N, 4) array of x, y, polarity (0/1) and t in milliseconds (tonic turns it into
microseconds); the sensor is 128 x 128.

Binning (tonic's ``SliceByTimeBins`` with overlap 0): with t_0, t_last the first and last timestamps,
w = floor((t_last - t_0) / T) and frame k counts the events with t_0 + k w <= t < t_0 + (k + 1) w, per
polarity p and pixel (y, x). Events at or after t_0 + T w (at least the last one when T divides the
duration) fall in no frame, and a recording shorter than T microseconds (w = 0) gives empty frames; both are
tonic's rule, kept so that the frames are ToFrame's. Every sample is ``(frames, label)``: frames a float32
tensor (T, P, H, W) of integer counts (graded inputs larger than 1: the fixed-point network takes them with
input scale 1, docs/fixed-point.md §10.1), label a 0-dim int64 tensor; the network sees frame t at step t
(:class:`bso_deploy.encoding.EventFramesEncoder`).

Files are checked when the data set is loaded (layout, labels, N-MNIST record lengths, DVS Gesture array
shapes) and each recording when it is read (coordinates and polarity inside the sensor, timestamps in
order): a bad file is a ValueError naming it. tonic is the ``events`` extra, imported inside the functions
that need it; without it they raise :class:`~bso_deploy.extras.MissingExtraError`.
"""

from __future__ import annotations

import functools
import io
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType

import numpy as np
import torch
from numpy.lib import recfunctions
from torch.utils.data import Dataset

from .extras import MissingExtraError

NMNIST_RECORD_BYTES = 5  # one ATIS event: 40 bits (module docstring)
NMNIST_OVERFLOW_Y = 240  # an N-MNIST record with this y marks a timestamp overflow (tonic.io.read_mnist_file)
DVSGESTURE_COLUMNS = 4  # x, y, polarity, t (ms)
MICROSECONDS_PER_MILLISECOND = 1000


def _tonic() -> ModuleType:
    """The tonic package; MissingExtraError (extra ``events``) without it."""
    try:  # optional (extra "events"): only the event-camera data sets need tonic
        import tonic
    except ImportError as error:
        raise MissingExtraError("the event-camera data sets (nmnist, dvsgesture)", "tonic", "events") from error
    return tonic


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int], path: Path) -> None:
    """ValueError naming ``path`` and the first bad event unless every event lies on the sensor
    (``sensor_size`` = (W, H, P): 0 <= x < W, 0 <= y < H, 0 <= p < P) and timestamps never decrease (the
    time bins assume sorted events)."""
    width, height, polarities = sensor_size
    for field, size in (("x", width), ("y", height), ("p", polarities)):
        values = events[field].astype(np.int64)
        bad = np.flatnonzero((values < 0) | (values >= size))
        if bad.size:
            raise ValueError(f"{path}: event {int(bad[0])} has {field} = {int(values[bad[0]])}, outside the "
                             f"sensor's [0, {size}) ({width} x {height}, {polarities} polarities); "
                             f"{bad.size} such events: the file is corrupt or from another sensor")
    times = events["t"].astype(np.int64)
    backwards = np.flatnonzero(np.diff(times) < 0)
    if backwards.size:
        index = int(backwards[0]) + 1
        raise ValueError(f"{path}: event {index} has timestamp {int(times[index])} before its predecessor's "
                         f"{int(times[index - 1])}; event files must be in time order")


def read_nmnist_file(path: Path) -> np.ndarray:
    """The events of one N-MNIST file (structured array x, y, t (µs), p) through ``tonic.io.read_mnist_file``,
    overflow records removed; ValueError for a truncated file or events outside the 34 x 34 sensor."""
    tonic = _tonic()
    data = Path(path).read_bytes()
    _check_record_length(len(data), path)
    events = tonic.io.read_mnist_file(io.BytesIO(data), dtype=tonic.datasets.NMNIST.dtype, is_stream=True)
    check_events(events, tonic.datasets.NMNIST.sensor_size, path)
    return events


def _check_record_length(size: int, path: Path) -> None:
    if size % NMNIST_RECORD_BYTES:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {NMNIST_RECORD_BYTES}-byte ATIS "
                         f"records ({size % NMNIST_RECORD_BYTES} bytes left over): the file is truncated or "
                         "not an N-MNIST .bin file")


def read_dvsgesture_file(path: Path) -> np.ndarray:
    """The events of one DVS Gesture file of tonic's preprocessed version (structured array x, y, p, t (µs)),
    as ``tonic.datasets.DVSGesture`` reads it; ValueError for a bad array or events outside the sensor."""
    tonic = _tonic()
    array = np.load(path, allow_pickle=False)
    _check_dvsgesture_array(array.shape, array.dtype, path)
    if not np.all(array == np.round(array)):
        raise ValueError(f"{path}: DVS Gesture events must be integers (x, y, polarity, t in ms)")
    dataset = tonic.datasets.DVSGesture
    columns = array.astype(np.int64)
    if columns.size and (columns[:, 2].min() < 0 or columns[:, 2].max() > 1):
        raise ValueError(f"{path}: polarities must be 0 or 1, found [{columns[:, 2].min()}, {columns[:, 2].max()}]")
    columns[:, 3] *= MICROSECONDS_PER_MILLISECOND  # tonic's DVSGesture: ms -> µs
    events = recfunctions.unstructured_to_structured(columns, dataset.dtype)
    check_events(events, dataset.sensor_size, path)
    return events


def _check_dvsgesture_array(shape: tuple[int, ...], dtype: np.dtype, path: Path) -> None:
    if len(shape) != 2 or shape[1] != DVSGESTURE_COLUMNS or dtype.kind not in "iuf":
        raise ValueError(f"{path}: a DVS Gesture file holds a numeric (N, {DVSGESTURE_COLUMNS}) array of x, y, "
                         f"polarity, t (ms); got {dtype} of shape {shape}")


def bin_events(events: np.ndarray, sensor_size: tuple[int, int, int], time_steps: int) -> np.ndarray:
    """Frames (time_steps, P, H, W) float32 of event counts: ``tonic.transforms.ToFrame(sensor_size,
    n_time_bins=time_steps)`` (the binning rule is in the module docstring)."""
    tonic = _tonic()
    width, height, polarities = sensor_size
    frames = tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=time_steps)(events)
    frames = np.asarray(frames).reshape(time_steps, polarities, height, width)  # empty: zeros (T, P, W, H), W = H
    return frames.astype(np.float32)


@dataclass(frozen=True)
class EventDatasetLayout:
    """Where one event data set's files lie and how to read them (module docstring).

    Attributes:
        folder: the data set's folder under the root (tonic's class name).
        split_folders: (train, test) folders inside it.
        suffix: file name ending of one recording.
        sensor_size: (W, H, P), tonic's ``sensor_size``.
        num_classes: labels lie in [0, num_classes).
        read: path -> structured events (x, y, t, p).
        label: path of a recording (inside its split folder) -> its label as tonic derives it.
        check_file: path -> None, the cheap check run on every file at load time (ValueError if bad).
        source: where to get the files.
        pattern: the recordings' paths inside a split folder, for error messages.
    """

    folder: str
    split_folders: tuple[str, str]
    suffix: str
    sensor_size: tuple[int, int, int]
    num_classes: int
    read: Callable[[Path], np.ndarray]
    label: Callable[[Path], str]
    check_file: Callable[[Path], None]
    source: str
    pattern: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One frame's shape (P, H, W)."""
        width, height, polarities = self.sensor_size
        return (polarities, height, width)


def _folder_label(path: Path) -> str:
    """N-MNIST: the digit is the name of the recording's folder."""
    return path.parent.name


def _file_label(path: Path) -> str:
    """DVS Gesture: the class is the recording's file name, ``<label>.npy``."""
    return path.stem


def _check_nmnist_file(path: Path) -> None:
    _check_record_length(path.stat().st_size, path)


def _check_dvsgesture_file(path: Path) -> None:
    array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    _check_dvsgesture_array(array.shape, array.dtype, path)


EVENT_LAYOUTS: Mapping[str, EventDatasetLayout] = MappingProxyType({
    "nmnist": EventDatasetLayout(
        folder="NMNIST", split_folders=("Train", "Test"), suffix=".bin", sensor_size=(34, 34, 2), num_classes=10,
        read=read_nmnist_file, label=_folder_label, check_file=_check_nmnist_file,
        source="https://www.garrickorchard.com/datasets/n-mnist (Train.zip and Test.zip, extracted)",
        pattern="<digit 0-9>/*.bin"),
    "dvsgesture": EventDatasetLayout(
        folder="DVSGesture", split_folders=("ibmGestureTrain", "ibmGestureTest"), suffix=".npy",
        sensor_size=(128, 128, 2), num_classes=11, read=read_dvsgesture_file, label=_file_label,
        check_file=_check_dvsgesture_file,
        source="tonic's preprocessed DVS Gesture (ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz, extracted)",
        pattern="user<NN>_<lighting>/<label 0-10>.npy"),
})
"""Event data set name -> its layout (the names are ``bso_deploy.options.EVENT_DATASET_NAMES``)."""


class EventFrameDataset(Dataset):
    """Recordings on disk, read and binned into frames one sample at a time (as DataLoader workers ask).

    Args:
        files: paths of the recordings.
        labels: int64 tensor (len(files),).
        layout: the data set's layout (reader, sensor).
        time_steps: frames per sample T.

    ``dataset[i]`` is (frames (T, P, H, W) float32 of counts, label); the input shape of the network is
    ``input_shape`` = (P, H, W), one frame. ``largest_count`` is the largest count of any pixel in any frame
    of any sample (read on first use: one pass over the files), the input range of the fixed-point network.
    """

    def __init__(self, files: tuple[Path, ...], labels: torch.Tensor, layout: EventDatasetLayout,
                 time_steps: int) -> None:
        if labels.dtype != torch.int64 or labels.shape != (len(files),):
            raise ValueError(f"labels must be an int64 tensor of shape ({len(files)},), got {labels.dtype} of shape "
                             f"{tuple(labels.shape)}")
        self.files, self.labels, self.layout, self.time_steps = tuple(files), labels, layout, int(time_steps)
        self.input_shape = layout.input_shape
        self.num_classes = layout.num_classes

    def __len__(self) -> int:
        return len(self.files)

    @functools.cached_property
    def largest_count(self) -> int:
        """max over samples i, frames t, polarities, pixels of the count (0 for no events at all)."""
        return max((int(self[index][0].max()) for index in range(len(self))), default=0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[index]
        frames = bin_events(self.layout.read(path), self.layout.sensor_size, self.time_steps)
        return torch.from_numpy(frames), self.labels[index]


def _expected(layout: EventDatasetLayout, root: Path) -> str:
    splits = ",".join(layout.split_folders)
    return (f"expected {root / layout.folder}/{{{splits}}}/{layout.pattern}. Nothing is downloaded: get the files "
            f"from {layout.source}, or pass root=... / --data-root (or set $BSO_DATA) to the folder that holds "
            f"{layout.folder}/")


def _split_files(layout: EventDatasetLayout, root: Path, split_folder: str) -> tuple[tuple[Path, ...], torch.Tensor]:
    """The recordings of one split and their labels (sorted by path); errors name the expected layout."""
    directory = root / layout.folder / split_folder
    if not directory.is_dir():
        raise FileNotFoundError(f"event data folder {directory} is missing; {_expected(layout, root)}")
    files = tuple(sorted(path for path in directory.glob(f"*/*{layout.suffix}") if path.is_file()))
    if not files:
        raise FileNotFoundError(f"no *{layout.suffix} recordings in {directory}; {_expected(layout, root)}")
    labels = []
    for path in files:
        name = layout.label(path)
        if not name.isdigit() or int(name) >= layout.num_classes:
            raise ValueError(f"{path}: its label {name!r} (from the path) is not a class in [0, "
                             f"{layout.num_classes}); {_expected(layout, root)}")
        layout.check_file(path)
        labels.append(int(name))
    return files, torch.tensor(labels, dtype=torch.int64)


def _check_time_steps(time_steps: object) -> int:
    if isinstance(time_steps, bool) or time_steps is None:
        raise TypeError(f"event data sets need time_steps, the number of frames per sample (an int >= 1), got "
                        f"{time_steps!r}")
    try:
        number = operator.index(time_steps)
    except TypeError:
        raise TypeError(f"time_steps must be an int, got {type(time_steps).__name__} {time_steps!r}") from None
    if number < 1:
        raise ValueError(f"time_steps must be >= 1 (frames per sample), got {number}")
    return number


def load_event_data(name: str, root: Path, time_steps: int) -> tuple[EventFrameDataset, EventFrameDataset]:
    """(train, test) of event data set ``name`` (a key of ``EVENT_LAYOUTS``) under ``root``, each sample
    binned into ``time_steps`` frames. Raises MissingExtraError without tonic, FileNotFoundError naming the
    expected layout when files are missing, ValueError for bad labels or files."""
    if not isinstance(name, str) or name not in EVENT_LAYOUTS:
        raise ValueError(f"unknown event data set {name!r}; valid names: {', '.join(EVENT_LAYOUTS)}")
    time_steps = _check_time_steps(time_steps)
    _tonic()  # fail before touching the files when the extra is missing
    layout = EVENT_LAYOUTS[name]
    train, test = (EventFrameDataset(*_split_files(layout, Path(root), folder), layout, time_steps)
                   for folder in layout.split_folders)
    return train, test
