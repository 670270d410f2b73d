"""Exact activation memory: bytes of the tensors autograd saves for backward.

:class:`SavedTensorMeter` wraps ``torch.autograd.graph.saved_tensors_hooks``: every tensor packed for
backward is counted once per distinct storage while the meter is active (parameters, which exist
anyway, are not counted). ``peak_bytes`` is the largest amount held at once across the backward calls
reported with :meth:`SavedTensorMeter.release` — for online training that is one time step's graph, for
BPTT the whole unrolled sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SavedTensorMeter:
    """Count bytes saved for backward; call :meth:`release` after each ``backward()``."""

    def __init__(self, parameters: list[Tensor] | None = None) -> None:
        self._parameter_storages = {self._key(p) for p in (parameters or [])}
        self._live: dict[tuple, int] = {}
        self.peak_bytes = 0
        self.total_bytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    @staticmethod
    def _key(tensor: Tensor) -> tuple:
        storage = tensor.untyped_storage()
        return (storage.data_ptr(), storage.nbytes(), tensor.device.type)

    def _pack(self, tensor: Tensor) -> Tensor:
        key = self._key(tensor)
        if key not in self._parameter_storages and key not in self._live:
            self._live[key] = tensor.untyped_storage().nbytes()
            self.total_bytes += self._live[key]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return tensor

    @staticmethod
    def _unpack(tensor: Tensor) -> Tensor:
        return tensor

    @property
    def live_bytes(self) -> int:
        return sum(self._live.values())

    def release(self) -> None:
        """The graph that held the counted tensors was freed by backward()."""
        self._live.clear()

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._hooks.__exit__(*exc_info)
