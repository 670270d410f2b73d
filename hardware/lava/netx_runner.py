"""lava-dl's own netx loader run on Lava: the outside judge of netx export (``export/netx/writer.py``) and import
(``export/netx/reader.py``)."""

from __future__ import annotations

import os

import numpy as np

from ..spec import SPEC
from .compat import ensure_lava_importable
from .workers import WorkerGuard, end_workers

__all__ = ["lava_layout", "our_layout", "run_lavadl_netx"]


def lava_layout(array: np.ndarray) -> np.ndarray:
    """Ours (T, C, H, W) / (T, n) -> what Lava's ports hold over the steps: (W, H, C, T) / (n, T)."""
    array = np.asarray(array)
    return np.ascontiguousarray(array.transpose(3, 2, 1, 0) if array.ndim == 4 else array.T)


def our_layout(array: np.ndarray) -> np.ndarray:
    """Lava's (W, H, C, T) / (n, T) -> ours (T, C, H, W) / (T, n)."""
    array = np.moveaxis(np.asarray(array), -1, 0)
    return array.transpose(0, 3, 2, 1) if array.ndim == 4 else array


def run_lavadl_netx(path: str | os.PathLike, inputs: np.ndarray,
                    input_message_bits: int = SPEC.input_bits) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Load ``path`` with lava-dl's ``netx.hdf5.Network``, feed ``inputs`` (T, *input_shape) integers, our
    layout (T, n) or (T, C, H, W), through a RingBuffer and run T steps under
    ``Loihi2SimCfg(select_tag="fixed_pt")``; the run is always stopped.

    Returns, per layer and in our layout (T, *shape), the spikes (int8) and v (int64)."""
    ensure_lava_importable()
    from lava.lib.dl.netx import hdf5  # lazy: lava-dl imports torch, torchvision and Lava
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import Read
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    steps = inputs.shape[0]
    net = hdf5.Network(net_config=os.fspath(path), input_message_bits=input_message_bits)
    source = Source(data=lava_layout(inputs).astype(np.int32))
    source.s_out.connect(net.inp)
    sinks, readers = [], []
    for block in net.layers:
        sink = Sink(shape=block.out.shape, buffer=steps)
        block.out.connect(sink.a_in)
        sinks.append(sink)
        reader = Read(buffer=steps)
        reader.connect_var(block.neuron.v)
        readers.append(reader)
    workers = WorkerGuard()
    try:
        with workers.starting():  # the first run compiles and forks Lava's workers
            net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = [our_layout(sink.data.get()).astype(np.int8) for sink in sinks]
        v = [our_layout(reader.data.get()).astype(np.int64) for reader in readers]
    finally:
        end_workers(workers, net.stop, lambda: net.runtime)
    return spikes, v
