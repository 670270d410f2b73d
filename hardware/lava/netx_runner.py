"""lava-dl's own netx loader run on Lava: the outside judge of netx export (``export/netx/writer.py``) and import
(``export/netx/reader.py``)."""

from __future__ import annotations

import os

import numpy as np

from ..spec import SPEC
from .compat import ensure_lava_importable

__all__ = ["run_lavadl_netx"]


def run_lavadl_netx(path: str | os.PathLike, inputs: np.ndarray,
                    input_message_bits: int = SPEC.input_bits) -> tuple[list[np.ndarray], np.ndarray]:
    """Load ``path`` with lava-dl's ``netx.hdf5.Network``, feed ``inputs`` (T, n_in) integers through a
    RingBuffer and run T steps under ``Loihi2SimCfg(select_tag="fixed_pt")``; the run is always stopped.

    Returns (spikes of every layer, (T, n) int8; the last layer's v, (T, n) int64)."""
    ensure_lava_importable()
    from lava.lib.dl.netx import hdf5  # lazy: lava-dl imports torch, torchvision and Lava
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import Read
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    steps = inputs.shape[0]
    net = hdf5.Network(net_config=os.fspath(path), input_message_bits=input_message_bits)
    source = Source(data=np.ascontiguousarray(np.asarray(inputs).T, dtype=np.int32))
    source.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sink = Sink(shape=block.out.shape, buffer=steps)
        block.out.connect(sink.a_in)
        sinks.append(sink)
    reader = Read(buffer=steps)
    reader.connect_var(net.layers[-1].neuron.v)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = [np.asarray(sink.data.get()).T.astype(np.int8) for sink in sinks]
        v = np.asarray(reader.data.get()).T.astype(np.int64)
    finally:
        net.stop()
    return spikes, v
