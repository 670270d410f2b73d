"""Graphs written by Rockpool 3.1.0's own exporter (``rockpool.nn.modules.torch.nir.to_nir``).

Rockpool traces a sample of shape (batch, n_in) and declares it, batch included: its Input declares (1, 3)
and its Output (1, 1, 1) for one output neuron (batch and time axes). nir 1.0.8's own ``nir.read`` refuses
such a file; the shared graph check (``validate.check_graph``) accepts a declared shape that differs from the
actual one by size-1 axes only, for every backend.

Rockpool's LIFTorch is not NIR's forward-Euler CubaLIF: per step it computes ``i = beta (i + x)``,
``v = alpha v + i`` with ``alpha = exp(-dt/tau_mem)``, ``beta = exp(-dt/tau_syn)``, subtracts the threshold on
a spike (several spikes per step unless ``max_spikes_per_dt = 1``), and writes ``r = tau_mem alpha / dt``,
``w_in = 1``. The file does not say any of this, so we run the file's equations; the test pins the exact
rewrite of the parameters under which our backend reproduces Rockpool (docs/nir.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require

DT = 1e-3  # Rockpool's modules' default dt, which its exporter assumes
T, BATCH, N_IN, N = 120, 4, 3, 8


@pytest.fixture(scope="module")
def rockpool():
    return require("rockpool.nn.modules")


def network(rockpool, seed: int, one_tau: bool = False):
    """Linear -> LIF -> Linear -> LIF; ``one_tau``: one tau_mem and tau_syn per layer (what the hardware's
    one decay register per layer can run), else per-neuron random ones."""
    sequential = require("rockpool.nn.combinators").Sequential
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    tau_mem, tau_syn = (torch.full((N,), 0.02), torch.full((N,), 0.008)) if one_tau else (
        rand(N) * 0.03 + 0.01, rand(N) * 0.01 + 0.005)
    return sequential(
        rockpool.LinearTorch((N_IN, N), weight=rand(N_IN, N) * 0.6 - 0.25, has_bias=False),
        rockpool.LIFTorch(N, tau_mem=tau_mem, tau_syn=tau_syn,
                          threshold=rand(N) * 1.5 + 1.0, max_spikes_per_dt=1.0, dt=DT),
        rockpool.LinearTorch((N, 1), weight=rand(N, 1), has_bias=False),
        rockpool.LIFTorch(1, tau_mem=0.02, tau_syn=0.01, threshold=torch.tensor([20.0]), max_spikes_per_dt=1.0,
                          dt=DT))


def export_write(net, tmp_path):
    nir = require("nir")
    graph = require("rockpool.nn.modules.torch.nir").to_nir(net)
    nir.write(tmp_path / "rockpool.nir", graph)
    return graph, tmp_path / "rockpool.nir"


def rockpool_spikes(net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spikes of both LIF layers, (T, batch, n), from Rockpool's forward on x of shape (T, batch, n_in)."""
    with torch.no_grad():
        _, _, record = net(x.transpose(0, 1), record=True)
    return {name: record[name]["spikes"].transpose(0, 1) for name in ("1_LIFTorch", "3_LIFTorch")}


def inputs(seed: int) -> torch.Tensor:
    return torch.rand(T, BATCH, N_IN, generator=torch.Generator().manual_seed(30 + seed))


def test_output_declaring_batch_and_time_axes_is_accepted(rockpool, tmp_path):
    nir = require("nir")
    nir_io = require("bso_deploy.export.nir")
    validate = require("bso_deploy.export.nir.validate")
    backends = require("bso_deploy.hardware.backends")
    graph, path = export_write(network(rockpool, 0), tmp_path)
    assert tuple(graph.nodes["output"].output_type["output"]) == (1, 1, 1)
    assert tuple(graph.nodes["input"].input_type["input"]) == (1, N_IN)
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(path)  # nir's own reader refuses what Rockpool wrote
    for checked in (validate.check_graph(graph), validate.check_graph(nir_io.read_nir_file(path))):
        assert checked.input_shape == (N_IN,) and checked.output_shape == (1,)
    result = backends.run_graph(nir_io.read_nir_file(path), "float", inputs(0).numpy(), dt=DT, record=True)
    assert result.output.shape == (T, BATCH, 1) and result.layers["1_LIFTorch"].sum() > 50
    # the compiler applies the same check (issue 11, item 8): the sim backend takes such a graph too
    _, path = export_write(network(rockpool, 0, one_tau=True), tmp_path)
    graph = nir_io.read_nir_file(path)
    assert tuple(graph.nodes["output"].output_type["output"]) == (1, 1, 1)
    float_run = backends.run_graph(graph, "float", inputs(0).numpy(), dt=DT, record=True)
    fixed = backends.run_graph(graph, "sim", inputs(0).numpy(), dt=DT, record=True)
    assert fixed.output.shape == (T + 2, BATCH, 1) and fixed.layers["1_LIFTorch"].sum() > 50
    assert 0.9 < fixed.layers["1_LIFTorch"].sum() / float_run.layers["1_LIFTorch"].sum() < 1.1


def as_rockpool_steps(graph, dt: float):
    """Rewrite each CubaLIF so that NIR's Euler step is Rockpool's: synapse decay and gain beta, membrane
    decay alpha and gain 1, subtractive reset."""
    for node in graph.nodes.values():
        if type(node).__name__ == "CubaLIF":
            alpha = np.exp(-dt / np.asarray(node.tau_mem, np.float64))
            beta = np.exp(-dt / np.asarray(node.tau_syn, np.float64))
            node.tau_syn = dt / (1 - beta)
            node.w_in = beta * node.tau_syn / dt
            node.tau_mem = dt / (1 - alpha)
            node.r = node.tau_mem / dt
    graph.metadata["reset"] = "subtract"
    return graph


@pytest.mark.parametrize("seed", range(3))
def test_rockpool_lif_runs_as_rockpool_once_its_conventions_are_written(rockpool, tmp_path, seed):
    nir_io = require("bso_deploy.export.nir")
    net = network(rockpool, seed)
    _, path = export_write(net, tmp_path)
    x = inputs(seed)
    expected = rockpool_spikes(net, x)
    as_written = nir_io.from_nir(nir_io.read_nir_file(path), dt=DT).record(x)
    assert sum(int((as_written[name] != spikes).sum()) for name, spikes in expected.items()) > 100
    rewritten = nir_io.from_nir(as_rockpool_steps(nir_io.read_nir_file(path), DT), dt=DT).record(x)
    for name, spikes in expected.items():
        np.testing.assert_array_equal(rewritten[name].numpy(), spikes.numpy(), err_msg=name)
        assert 0.1 * spikes.numel() < spikes.sum() < 0.9 * spikes.numel(), (name, spikes.sum())


def test_missing_dt_names_the_rockpool_convention(rockpool, tmp_path):
    graph, _ = export_write(network(rockpool, 0), tmp_path)
    with pytest.raises(ValueError, match=r"Rockpool dt=1e-3"):
        require("bso_deploy.export.nir").from_nir(graph)
