"""hardware/simulation_result.py: LayerSaturation.totals counts neuron-steps and distinct neurons per event."""

from __future__ import annotations

import numpy as np
from bso_deploy.hardware.simulation_result import LayerSaturation, SimulationResult


def test_totals_per_event():
    counts = LayerSaturation(v=np.array([[0, 3], [1, 0]]), u=np.zeros((2, 2), np.int64), a=np.array([[2, 2], [2, 0]]))
    assert counts.totals() == {"v_steps": 4, "v_neurons": 2, "u_steps": 0, "u_neurons": 0, "a_steps": 6,
                               "a_neurons": 3}
    assert all(type(value) is int for value in counts.totals().values())


def test_result_without_saturation_counts():
    result = SimulationResult(spikes=(np.zeros((2, 1, 3), np.int8),), output=np.zeros((2, 1, 3), np.int64), u=(),
                              v=())
    assert result.saturation == ()
