"""from_nir on graphs written by hand in the conventions of snnTorch and Norse, and on every supported node
type: hand-computed membrane traces (docs/nir.md states the update order these follow)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import require


def chain(nir, *nodes, shape=(1,), metadata=None):
    """Input -> nodes... -> Output, named n0, n1, ..."""
    named = {"input": nir.Input(input_type=np.array(shape))}
    named.update({f"n{i}": node for i, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type=np.array(shape))
    names = list(named)
    return nir.NIRGraph(nodes=named, edges=list(itertools.pairwise(names)), metadata=metadata or {},
                        type_check=False)


def run(module, currents, node="n0"):
    """Feed one neuron the given per-step inputs; return (outputs, membrane after each step)."""
    outputs, membrane = [], []
    module.reset_state()
    for value in currents:
        outputs.append(module.step(torch.tensor([[value]], dtype=torch.float64)).item())
        membrane.append(module.node_state(node).v.item())
    return outputs, membrane


def arr(*values):
    return np.array(values, dtype=np.float64)


def test_snntorch_leaky_graph(nir, nir_io):
    # snnTorch exports Leaky(beta=0.9, threshold=1) as tau = dt/(1-beta), r = tau/dt at dt = 1e-4 and
    # records no dt: per step v = 0.9 v + I, spike if v > 1, reset to v_reset = 0.
    dt, beta = 1e-4, 0.9
    tau = dt / (1 - beta)
    graph = chain(nir, nir.LIF(tau=arr(tau), r=arr(tau / dt), v_leak=arr(0.0), v_threshold=arr(1.0),
                               v_reset=arr(0.0)))
    module = nir_io.from_nir(graph, dt=dt, dtype=torch.float64)
    spikes, v = run(module, [0.5, 0.5, 0.5, 0.0, 1.2, 0.3])
    # v: 0.5; 0.95; 1.355 -> spike, 0; 0; 1.2 -> spike, 0; 0.3
    assert spikes == [0, 0, 1, 0, 1, 0]
    np.testing.assert_allclose(v, [0.5, 0.95, 0.0, 0.0, 0.0, 0.3], rtol=1e-14, atol=1e-15)


def test_norse_lif_box_graph(nir, nir_io):
    # Norse's LIFBox(tau_mem_inv=100/s) in NIR's units is tau = 0.01 s, r = 1 (Norse 1.1.0's exporter itself
    # writes tau * dt, see docs/nir.md and test_third_party_norse.py); at dt = 1 ms:
    # v <- v + 0.1 * (v_leak - v + I) = 0.9 v + 0.1 I
    graph = chain(nir, nir.LIF(tau=arr(0.01), r=arr(1.0), v_leak=arr(0.0), v_threshold=arr(1.0),
                               v_reset=arr(0.0)))
    module = nir_io.from_nir(graph, dt=1e-3, dtype=torch.float64)
    spikes, v = run(module, [5.0, 5.0, 5.0, 0.0, 12.0])
    assert spikes == [0, 0, 1, 0, 1]
    np.testing.assert_allclose(v, [0.5, 0.95, 0.0, 0.0, 0.0], rtol=1e-14, atol=1e-15)


def test_leak_voltage_is_the_resting_potential(nir, nir_io):
    # starts at v_leak = 0.2 and stays there without input; with input 1: 0.2 + 0.1 * (0.2 - 0.2 + 1) = 0.3
    graph = chain(nir, nir.LI(tau=arr(0.01), r=arr(1.0), v_leak=arr(0.2)))
    module = nir_io.from_nir(graph, dt=1e-3, dtype=torch.float64)
    outputs, _ = run(module, [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(outputs, [0.2, 0.2, 0.3, 0.29], rtol=1e-14)


def test_snntorch_synaptic_cuba_lif_graph(nir, nir_io):
    # snnTorch Synaptic(alpha=0.5, beta=0.75): tau_syn = dt/(1-alpha), tau_mem = dt/(1-beta),
    # r = tau_mem/dt, w_in = tau_syn/dt. Per step: i = 0.5 i + x; v = 0.75 v + i (the new i); threshold 1.2
    dt = 1e-4
    tau_syn, tau_mem = dt / 0.5, dt / 0.25
    graph = chain(nir, nir.CubaLIF(tau_syn=arr(tau_syn), tau_mem=arr(tau_mem), r=arr(tau_mem / dt),
                                   v_leak=arr(0.0), v_threshold=arr(1.2), v_reset=arr(0.0), w_in=arr(tau_syn / dt)))
    module = nir_io.from_nir(graph, dt=dt, dtype=torch.float64)
    spikes, v = run(module, [1.0, 0.0, 0.0, 0.0])
    # i: 1, 0.5, 0.25, 0.125; v: 1.0; 0.75 + 0.5 = 1.25 -> spike, 0; 0.25; 0.1875 + 0.125 = 0.3125
    assert spikes == [0, 1, 0, 0]
    np.testing.assert_allclose(v, [1.0, 0.0, 0.25, 0.3125], rtol=1e-14)
    np.testing.assert_allclose(module.node_state("n0").i_syn.item(), 0.125, rtol=1e-14)


def test_norse_cuba_lif_graph(nir, nir_io):
    # Norse LIF(tau_syn_inv=200, tau_mem_inv=100): r = 1, w_in = 1; dt = 1 ms:
    # i <- 0.8 i + 0.2 x, then v <- 0.9 v + 0.1 i
    graph = chain(nir, nir.CubaLIF(tau_syn=arr(0.005), tau_mem=arr(0.01), r=arr(1.0), v_leak=arr(0.0),
                                   v_threshold=arr(1.0), v_reset=arr(0.0), w_in=arr(1.0)))
    module = nir_io.from_nir(graph, dt=1e-3, dtype=torch.float64)
    _, v = run(module, [10.0, 0.0, 0.0])
    # i: 2.0, 1.6, 1.28; v: 0.2, 0.18 + 0.16 = 0.34, 0.306 + 0.128 = 0.434
    np.testing.assert_allclose(v, [0.2, 0.34, 0.434], rtol=1e-14)


def test_cuba_li_graph(nir, nir_io):
    graph = chain(nir, nir.CubaLI(tau_syn=arr(0.005), tau_mem=arr(0.01), r=arr(1.0), v_leak=arr(0.0),
                                  w_in=arr(1.0)))
    outputs, _ = run(nir_io.from_nir(graph, dt=1e-3, dtype=torch.float64), [10.0, 0.0, 0.0])
    np.testing.assert_allclose(outputs, [0.2, 0.34, 0.434], rtol=1e-14)


@pytest.mark.parametrize(("reset", "expected_spikes", "expected_v"), [
    # v += dt * r * I = 1 per step; threshold 1.5 (strict)
    (None, [0, 1, 0, 1, 0], [1.0, 0.0, 1.0, 0.0, 1.0]),  # NIR: reset to v_reset = 0
    ("subtract", [0, 1, 0, 1, 1], [1.0, 0.5, 1.5, 1.0, 0.5]),  # 1.5 does not fire: strict >
])
def test_if_graph_and_reset_metadata(nir, nir_io, reset, expected_spikes, expected_v):
    metadata = {} if reset is None else {"reset": reset}
    graph = chain(nir, nir.IF(r=arr(2.0), v_threshold=arr(1.5), v_reset=arr(0.0), metadata=metadata))
    spikes, v = run(nir_io.from_nir(graph, dt=0.5, dtype=torch.float64), [1.0] * 5)
    assert spikes == expected_spikes
    assert v == expected_v


def test_integrator_threshold_and_scale(nir, nir_io):
    graph = chain(nir, nir.I(r=arr(4.0)), nir.Scale(scale=arr(0.5)), nir.Threshold(threshold=arr(1.0)))
    module = nir_io.from_nir(graph, dt=0.25, dtype=torch.float64)  # v += I; output 0.5 v > 1
    outputs, v = run(module, [1.0, 1.0, 1.0, -2.0])
    assert v == [1.0, 2.0, 3.0, 1.0]
    assert outputs == [0, 0, 1, 0]
    assert module.last_outputs["n1"].item() == 0.5


def test_affine_keeps_its_bias_and_linear_has_none(nir, nir_io):
    weight = np.array([[1.0, 2.0], [3.0, -1.0]])
    graph = chain(nir, nir.Affine(weight=weight, bias=arr(0.5, -0.25)), nir.Linear(weight=weight), shape=(2,))
    module = nir_io.from_nir(graph)  # no neuron node: no dt needed
    out = module.step(torch.tensor([[1.0, 1.0]]))
    np.testing.assert_allclose(module.last_outputs["n0"].numpy(), [[3.5, 1.75]])  # nirtorch would drop b
    np.testing.assert_allclose(out.numpy(), [[7.0, 8.75]])


def test_conv_and_pooling_match_torch(nir, nir_io):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 2, 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    nodes = {
        "input": nir.Input(input_type=np.array([2, 6, 6])),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=weight.numpy(), stride=1, padding=1, dilation=1,
                           groups=1, bias=bias.numpy()),
        "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "avg": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([3, 1, 1])}, start_dim=0, end_dim=-1),
        "output": nir.Output(output_type=np.array([3])),
    }
    names = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)), type_check=False)
    module = nir_io.from_nir(graph, dtype=torch.float64)
    x = torch.randn(4, 2, 6, 6, generator=generator, dtype=torch.float64)
    conv = torch.nn.functional.conv2d(x, weight, bias, padding=1)
    summed = torch.nn.functional.avg_pool2d(conv, 2) * 4
    expected = torch.nn.functional.avg_pool2d(summed, 3).flatten(1)
    torch.testing.assert_close(module.step(x), expected, rtol=1e-12, atol=1e-12)
    assert module.shapes["sum"] == (3, 3, 3) and module.output_shape == (3,)


def test_recurrent_graph_uses_previous_step_spikes(nir, nir_io):
    # snnTorch RLeaky-like: lif -> w_rec -> lif. I[t] = x[t] + w_rec * s[t-1]; beta = 0.5, threshold 1.
    dt = 1e-4
    tau = dt / 0.5
    nodes = {
        "input": nir.Input(input_type=np.array([1])),
        "lif": nir.LIF(tau=arr(tau), r=arr(tau / dt), v_leak=arr(0.0), v_threshold=arr(1.0), v_reset=arr(0.0)),
        "w_rec": nir.Linear(weight=np.array([[0.8]])),
        "output": nir.Output(output_type=np.array([1])),
    }
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    module = nir_io.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), dt=dt,
                             dtype=torch.float64)
    spikes, v = run(module, [1.5, 0.0, 0.0, 0.0, 0.6], node="lif")
    # v: 1.5 -> spike, 0; 0 + 0.8 = 0.8; 0.4; 0.2; 0.1 + 0.6 = 0.7
    assert spikes == [1, 0, 0, 0, 0]
    np.testing.assert_allclose(v, [0.0, 0.8, 0.4, 0.2, 0.7], rtol=1e-14)


def test_nested_subgraph_is_inlined(nir, nir_io):
    inner = chain(nir, nir.IF(r=arr(1.0), v_threshold=arr(0.5), v_reset=arr(0.0)))
    nodes = {"input": nir.Input(input_type=np.array([1])), "block": inner,
             "output": nir.Output(output_type=np.array([1]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "block"), ("block", "output")], type_check=False)
    module = nir_io.from_nir(graph, dt=1.0, dtype=torch.float64)
    spikes, v = run(module, [0.25, 0.25, 0.25, 0.5], node="block.n0")
    assert spikes == [0, 0, 1, 0]
    assert v == [0.25, 0.5, 0.0, 0.5]


def test_dt_comes_from_metadata_and_the_argument_wins(nir, nir_io):
    lif = nir.LIF(tau=arr(0.01), r=arr(1.0), v_leak=arr(0.0), v_threshold=arr(10.0), v_reset=arr(0.0))
    graph = chain(nir, lif, metadata={"dt": 1e-3})
    assert nir_io.from_nir(graph).dt == 1e-3
    node_only = chain(nir, nir.LIF(tau=arr(0.01), r=arr(1.0), v_leak=arr(0.0), v_threshold=arr(10.0),
                                   metadata={"dt": 2e-3}))
    assert nir_io.from_nir(node_only).dt == 2e-3
    with pytest.warns(UserWarning, match="overrides"):
        module = nir_io.from_nir(graph, dt=5e-3, dtype=torch.float64)
    _, v = run(module, [1.0])
    assert v == pytest.approx([0.5])  # gain dt/tau = 0.5


def test_step_and_forward_shapes(nir, nir_io):
    graph = chain(nir, nir.Affine(weight=np.ones((3, 2)), bias=np.zeros(3)), shape=(2,))
    graph.nodes["output"] = nir.Output(output_type=np.array([3]))
    module = nir_io.from_nir(graph)
    assert module(torch.ones(5, 4, 2)).shape == (5, 4, 3)
    records = module.record(torch.ones(5, 4, 2))
    assert set(records) == {"input", "n0", "output"} and records["n0"].shape == (5, 4, 3)
    with pytest.raises(ValueError, match=r"expected \(batch, \*\(2,\)\)"):
        module.step(torch.ones(4, 3))
    with pytest.raises(KeyError, match="no node"):
        module.node_state("missing")


def test_supported_node_types_are_the_validated_ones(nir_io):
    validate = require("bso_deploy.export.nir.validate")
    assert set(nir_io.SUPPORTED_NODE_TYPES) | {"NIRGraph"} == set(validate.REQUIRED_FIELDS)
    assert {"Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Scale", "LIF", "CubaLIF", "IF",
            "LI", "I", "Threshold", "Input", "Output"} <= set(nir_io.SUPPORTED_NODE_TYPES)
