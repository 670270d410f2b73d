"""Graphs written by Sinabs 3.1.3's own exporter (``sinabs.to_nir``) run in our float backend spike for spike
like Sinabs's own forward pass, on long inputs: 300 steps of integer event counts (0..3 per pixel and step).

Sinabs writes IAF layers as ``nir.IF(r=1, v_threshold)`` (v_reset defaults to 0) and assumes dt = 1. The file
means reset to zero and one spike per step, so the exact tests use ``SingleSpike`` and ``MembraneReset``;
Sinabs's defaults (``MultiSpike``, ``MembraneSubtract``) and its ``>=`` threshold are pinned by the last tests
(docs/nir.md, "Third-party exporters"). Weights are multiples of 1/64 and the threshold is 1 + 2**-16, so every
sum is exact in float32 in any order and no membrane lands exactly on the threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require

T, BATCH, SHAPE = 300, 3, (2, 12, 12)
# k/64 sums minus n thresholds hit the threshold only after 2**10 subtractions: never in T = 300 steps; and
# v stays on a 2**-16 grid below 2**8, exact in float32.
THRESHOLD = 1.0 + 2.0**-16


@pytest.fixture(scope="module")
def sinabs():
    require("sinabs")
    return require("sinabs.layers")


def iaf(sl, single: bool = True, reset: str = "zero"):
    activation = require("sinabs.activation")
    return sl.IAFSqueeze(batch_size=1, spike_threshold=torch.tensor(THRESHOLD),
                         spike_fn=activation.SingleSpike if single else activation.MultiSpike,
                         reset_fn=activation.MembraneReset() if reset == "zero" else activation.MembraneSubtract(),
                         min_v_mem=None)


def conv_net(sl, seed: int, **neuron) -> torch.nn.Sequential:
    """Conv2d -> IAF -> SumPool2d -> Conv2d -> IAF -> Flatten -> Linear -> IAF, seeded weights k/64."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1, bias=False), iaf(sl, **neuron), sl.SumPool2d(2),
        torch.nn.Conv2d(4, 6, 3, bias=False), iaf(sl, **neuron), torch.nn.Flatten(),
        torch.nn.Linear(96, 10, bias=False), iaf(sl, **neuron))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                layer.weight.copy_(torch.randint(-24, 40, layer.weight.shape, generator=generator) / 64)
    return net


def event_counts(seed: int) -> torch.Tensor:
    """(T, batch, 2, 12, 12) integer counts: 0 mostly, else 1..3 events per pixel and step."""
    generator = torch.Generator().manual_seed(50 + seed)
    active = torch.rand(T, BATCH, *SHAPE, generator=generator) < 0.1
    return active * torch.randint(1, 4, (T, BATCH, *SHAPE), generator=generator).float()


def export_read(sinabs_module, net, tmp_path, metadata: dict | None = None):
    nir = require("nir")
    nir_io = require("bso_deploy.export.nir")
    graph = require("sinabs").to_nir(net, torch.zeros(1, *SHAPE))
    graph.infer_types()  # Sinabs leaves Conv2d/Flatten types undeclared, which nir.write cannot store
    graph.metadata.update(metadata or {})
    nir.write(tmp_path / "sinabs.nir", graph)
    return nir_io.read_nir_file(tmp_path / "sinabs.nir")


def sinabs_spikes(sl, net: torch.nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Spikes of the three IAF layers, each (T, batch, ...), one sequence at a time (batch_size=1)."""
    per_layer: dict[int, list[torch.Tensor]] = {}
    with torch.no_grad():
        for b in range(x.shape[1]):
            for layer in net:
                if isinstance(layer, sl.IAFSqueeze):
                    layer.reset_states()
            value = x[:, b]
            for index, layer in enumerate(net):
                value = layer(value)
                if isinstance(layer, sl.IAFSqueeze):
                    per_layer.setdefault(index, []).append(value)
    return [torch.stack(values, dim=1) for _, values in sorted(per_layer.items())]


def our_spikes(graph, x: torch.Tensor, dt: float = 1.0) -> list[torch.Tensor]:
    module = require("bso_deploy.export.nir").from_nir(graph, dt=dt, dtype=torch.float32)
    records = module.record(x)
    return [records[name] for name in module.node_names if module.node_types[name] == "IF"]


@pytest.mark.parametrize("seed", range(2))
def test_iaf_conv_net_on_300_steps_of_event_counts(sinabs, tmp_path, seed):
    net = conv_net(sinabs, seed)
    graph = export_read(sinabs, net, tmp_path)
    assert [type(node).__name__ for node in graph.nodes.values()].count("SumPool2d") == 1
    x = event_counts(seed)
    assert x.shape[0] >= 300 and x.max() == 3 and ((x > 1).sum() > 1000)
    expected = sinabs_spikes(sinabs, net, x)
    got = our_spikes(graph, x)
    assert len(got) == len(expected) == 3
    for layer, (ours, theirs) in enumerate(zip(got, expected)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=f"IF layer {layer}")
        assert theirs.sum() > 5000 if layer < 2 else theirs.sum() > 1000, (layer, theirs.sum())
    np.testing.assert_array_equal(got[-1].numpy(), expected[-1].numpy())  # the Output is the last IF's spikes


def test_default_multispike_subtract_is_not_in_the_file(sinabs, tmp_path):
    # Sinabs's default IAF emits floor(v / threshold) spikes per step and subtracts them; NIR's IF emits one
    # spike and resets to v_reset. Neither is written. Subtraction can be stated in the graph's metadata
    # (reset="subtract"): with SingleSpike that is then exact; several spikes per step cannot be expressed.
    x = event_counts(0)
    multi = conv_net(sinabs, 0, single=False, reset="subtract")
    assert sinabs_spikes(sinabs, multi, x)[0].max() > 1
    single = conv_net(sinabs, 0, single=True, reset="subtract")
    as_written = our_spikes(export_read(sinabs, single, tmp_path), x)
    expected = sinabs_spikes(sinabs, single, x)
    assert (as_written[0] != expected[0]).sum() > 100
    stated = our_spikes(export_read(sinabs, single, tmp_path, metadata={"reset": "subtract"}), x)
    for ours, theirs in zip(stated, expected):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_threshold_reached_exactly_fires_in_sinabs_only(sinabs, tmp_path):
    # Sinabs spikes when v >= threshold, NIR (and we) when v > threshold: equal only off the threshold.
    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), iaf(sinabs))
    with torch.no_grad():
        net[0].weight.fill_(THRESHOLD)
    nir = require("nir")
    graph = require("sinabs").to_nir(net, torch.zeros(1, 1))
    graph.infer_types()
    nir.write(tmp_path / "one.nir", graph)
    graph = require("bso_deploy.export.nir").read_nir_file(tmp_path / "one.nir")
    x = torch.tensor([1.0, 0.0, 0.5, 0.75]).reshape(4, 1, 1)  # v: threshold, 0, half, then 1.25 x threshold
    assert sinabs_spikes(sinabs, net, x)[0].flatten().tolist() == [1.0, 0.0, 0.0, 1.0]
    assert our_spikes(graph, x)[0].flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_missing_dt_names_the_sinabs_convention(sinabs, tmp_path):
    graph = export_read(sinabs, conv_net(sinabs, 0), tmp_path)
    with pytest.raises(ValueError, match=r"Sinabs IAF/IF graphs dt=1\b"):
        require("bso_deploy.export.nir").from_nir(graph)
