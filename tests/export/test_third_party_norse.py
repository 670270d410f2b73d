"""Graphs written by Norse 1.1.0's own exporter (``norse.torch.to_nir``) against Norse's own forward pass.

Norse 1.1.0 writes ``tau = dt / tau_mem_inv`` (seconds times dt, not seconds) with r = 1, so a network that
Norse runs at its default dt = 1e-3 s runs here at dt = 1e-6 = 1e-3 squared (docs/nir.md, "Third-party
exporters"). Norse evaluates ``v + dt/tau * ((v_leak - v) + i)`` and we ``(1 - dt/tau) v + dt/tau v_leak +
r dt/tau i``: the same real numbers, rounded differently, so spikes are compared exactly (float64) and the
membrane to 1e-12. Norse's LIFCell adds each input to its current with gain 1 but writes w_in = 1 (gain
dt/tau_syn in NIR): with the file's w_in the spikes differ; with w_in = tau_syn/dt they are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require

NORSE_DT, DT = 1e-3, 1e-6
T, BATCH, N_IN, N = 80, 6, 4, 12


@pytest.fixture(scope="module")
def norse():
    return require("norse.torch")


def network(norse, cell: str, seed: int):
    generator = torch.Generator().manual_seed(seed)
    rand = lambda scale, offset: torch.rand(N, generator=generator, dtype=torch.float64) * scale + offset  # noqa: E731
    common = dict(tau_mem_inv=rand(150.0, 50.0), v_leak=torch.zeros(N, dtype=torch.float64),
                  v_th=rand(0.5, 0.5), v_reset=torch.zeros(N, dtype=torch.float64))
    if cell == "box":
        neuron = norse.LIFBoxCell(norse.LIFBoxParameters(**common))
    else:
        neuron = norse.LIFCell(norse.LIFParameters(tau_syn_inv=rand(150.0, 100.0), **common))
    linear = torch.nn.Linear(N_IN, N, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.rand(N, N_IN, generator=generator, dtype=torch.float64) * 3.0 - 0.5)
        linear.bias.copy_(torch.rand(N, generator=generator, dtype=torch.float64) * 0.2)
    return norse.SequentialState(linear, neuron)


def inputs(seed: int) -> torch.Tensor:
    return torch.rand(T, BATCH, N_IN, generator=torch.Generator().manual_seed(10 + seed), dtype=torch.float64) * 2


def norse_run(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes, membrane after reset), each (T, batch, N), stepping Norse's cells at its dt = 1e-3."""
    state, spikes, membrane = None, [], []
    with torch.no_grad():
        for x_t in x:
            z, state = net(x_t, state)
            spikes.append(z)
            membrane.append(state[1].v)
    return torch.stack(spikes), torch.stack(membrane)


def export_read(norse, net, tmp_path):
    nir = require("nir")
    graph = norse.to_nir(net, torch.zeros(1, N_IN, dtype=torch.float64))
    nir.write(tmp_path / "norse.nir", graph)
    return require("bso_deploy.export.nir").read_nir_file(tmp_path / "norse.nir")


def our_run(graph, x: torch.Tensor, dt: float = DT) -> tuple[torch.Tensor, torch.Tensor]:
    module = require("bso_deploy.export.nir").from_nir(graph, dt=dt, dtype=torch.float64)
    spikes, membrane = [], []
    module.reset_state()
    for x_t in x:
        spikes.append(module.step(x_t))
        membrane.append(module.node_state("1").v)
    return torch.stack(spikes), torch.stack(membrane)


@pytest.mark.parametrize("seed", range(3))
def test_lif_box(norse, tmp_path, seed):
    net = network(norse, "box", seed)
    graph = export_read(norse, net, tmp_path)
    # the exporter's tau is Norse's tau times its dt; the Input declares the traced (1, 4), batch included
    np.testing.assert_allclose(np.asarray(graph.nodes["1"].tau), NORSE_DT / net[1].p.tau_mem_inv.numpy())
    assert tuple(graph.nodes["input"].input_type["input"]) == (1, N_IN)
    x = inputs(seed)
    spikes, membrane = norse_run(net, x)
    ours, our_membrane = our_run(graph, x)
    np.testing.assert_array_equal(ours.numpy(), spikes.numpy())
    np.testing.assert_allclose(our_membrane.numpy(), membrane.numpy(), rtol=1e-12, atol=1e-12)
    assert spikes.sum() > 0.2 * spikes.numel() and (1 - spikes).sum() > 0.2 * spikes.numel()
    wrong, _ = our_run(graph, x, dt=NORSE_DT)  # Norse's own dt: decay 1 - dt/tau < -40, nonsense
    assert (wrong != spikes).sum() > 0.1 * spikes.numel()


@pytest.mark.parametrize("seed", range(2))
def test_lif_cell_input_gain_is_not_exported(norse, tmp_path, seed):
    net = network(norse, "cell", seed)
    graph = export_read(norse, net, tmp_path)
    node = graph.nodes["1"]
    assert type(node).__name__ == "CubaLIF" and np.all(np.asarray(node.w_in) == 1.0)
    x = inputs(seed)
    spikes, membrane = norse_run(net, x)
    as_written, _ = our_run(graph, x)
    assert (as_written != spikes).sum() > 100
    node.w_in = np.asarray(node.tau_syn, dtype=np.float64) / DT  # per-step current gain 1, as Norse adds it
    ours, our_membrane = our_run(graph, x)
    np.testing.assert_array_equal(ours.numpy(), spikes.numpy())
    np.testing.assert_allclose(our_membrane.numpy(), membrane.numpy(), rtol=1e-12, atol=1e-12)
    assert spikes.sum() > 0.2 * spikes.numel()


def test_missing_dt_names_the_norse_convention(norse, tmp_path):
    graph = export_read(norse, network(norse, "box", 0), tmp_path)
    with pytest.raises(ValueError, match=r"Norse 1\.1\.0 dt=1e-6"):
        require("bso_deploy.export.nir").from_nir(graph)
