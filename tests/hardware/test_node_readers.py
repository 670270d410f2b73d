"""The compiler's NIR node readers (hardware/node_readers.py): foreign LIF, IF and CubaLIF conventions, and the
one-line errors for graphs and values the fixed-point network cannot hold."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.spec import SPEC, decay_from_tau
from compiler_checks import chain, check_report_and_bounds, lif
from conftest import require


@pytest.fixture(scope="module")
def hw(nir_io):
    """The compiler module (needs nir)."""
    return require("bso_deploy.hardware.compiler")


def test_foreign_lif_graphs_need_dt_and_fold_the_input_gain(hw, nir) -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(3, 4))
    dt, beta = 1e-4, 0.9
    tau = dt / (1 - beta)
    snntorch = chain(nir, nir.Affine(weight=weight * (1 - beta), bias=np.zeros(3)), lif(nir, 3, tau, tau / dt),
                     nir.Linear(weight=rng.normal(size=(1, 3))))
    norse = chain(nir, nir.Affine(weight=weight, bias=np.zeros(3)), lif(nir, 3, tau, 1.0),
                  nir.Linear(weight=snntorch.nodes["n2"].weight))
    with pytest.raises(ValueError, match="dt"):
        hw.compile_nir(snntorch)
    first, second = hw.compile_nir(snntorch, dt=dt), hw.compile_nir(norse, dt=dt)
    # snnTorch (r = tau/dt, weights carry 1 - beta) and Norse (r = 1, gain dt/tau) are the same network
    assert first.layers == second.layers
    assert first.layers[0].dv == decay_from_tau(1 / (1 - beta)) == 410
    assert first.layers[0].reset == "zero"  # no metadata: NIR's reset
    check_report_and_bounds(first)


def test_v_leak_drops_out_and_if_neurons_do_not_leak(hw, nir) -> None:
    dt = 1e-3
    leaky = chain(nir, nir.Affine(weight=np.eye(4), bias=np.zeros(4)),
                  lif(nir, 4, 2e-3, 2.0, threshold=1.5, v_leak=0.5, v_reset=0.5), nir.Linear(weight=np.ones((1, 4))))
    plain = chain(nir, nir.Affine(weight=np.eye(4), bias=np.zeros(4)), lif(nir, 4, 2e-3, 2.0, threshold=1.0),
                  nir.Linear(weight=np.ones((1, 4))))
    assert hw.compile_nir(leaky, dt=dt).layers == hw.compile_nir(plain, dt=dt).layers
    integrate = chain(nir, nir.Affine(weight=np.eye(4), bias=np.zeros(4)),
                      nir.IF(r=np.full(4, 1000.0), v_threshold=np.ones(4), v_reset=np.zeros(4)),
                      nir.Linear(weight=np.ones((1, 4))))
    fx_net = hw.compile_nir(integrate, dt=dt, time_steps=8)
    report = fx_net.quantization[0]
    assert (fx_net.layers[0].dv, report["readout_steps"]) == (0, 8 + 2)  # no leak: v bounded over the run
    assert report["v_bound"] == (report["u_bound"] + 0) * 10 <= SPEC.v_max
    with pytest.raises(ValueError, match="v_reset must equal v_leak"):
        hw.compile_nir(chain(nir, nir.Affine(weight=np.eye(4), bias=np.zeros(4)),
                             lif(nir, 4, 2e-3, 2.0, v_leak=0.5), nir.Linear(weight=np.ones((1, 4)))), dt=dt)


def test_cuba_lif_gets_a_synaptic_decay(hw, nir) -> None:
    dt = 1e-3
    n = 3
    cuba = nir.CubaLIF(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 2e-3), r=np.full(n, 2.0), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.full(n, 4.0))
    graph = chain(nir, nir.Affine(weight=np.random.default_rng(1).normal(size=(n, 4)), bias=np.zeros(n)), cuba,
                  nir.Linear(weight=np.ones((1, n))))
    fx_net = hw.compile_nir(graph, dt=dt)
    layer = fx_net.layers[0]
    assert (layer.du, layer.dv) == (decay_from_tau(4.0) - 1, decay_from_tau(2.0)) == (1023, 2048)
    assert fx_net.quantization[0]["syn_decay_error"] == 0.0 and "bias_note" not in fx_net.quantization[0]
    check_report_and_bounds(fx_net)
    biased = chain(nir, nir.Affine(weight=graph.nodes["n0"].weight, bias=np.full(n, 0.1)), cuba,
                   nir.Linear(weight=np.ones((1, n))))
    assert "steady-state" in hw.compile_nir(biased, dt=dt).quantization[0]["bias_note"]


def test_unsupported_graphs_name_the_node(hw, nir) -> None:
    affine = nir.Affine(weight=np.ones((4, 4)), bias=np.zeros(4))
    with pytest.raises(ValueError, match=r"'n1' \(Scale\).*not supported.*supported: .*LIF"):
        hw.compile_nir(chain(nir, affine, nir.Scale(scale=np.ones(4)), nir.Linear(weight=np.ones((1, 4)))), dt=1e-3)
    with pytest.raises(ValueError, match=r"'n1'.*without a neuron"):
        hw.compile_nir(chain(nir, affine, nir.Linear(weight=np.ones((1, 4)))))
    with pytest.raises(ValueError, match=r"'n0'.*must follow a synapse"):
        hw.compile_nir(chain(nir, lif(nir, 4, 2e-3, 2.0), nir.Linear(weight=np.ones((1, 4)))), dt=1e-3)
    overlapping = chain(nir, nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]),
                                           padding=np.array([0, 0])), shape=(1, 4, 4))
    overlapping.nodes["output"] = nir.Output(output_type=np.array([1, 3, 3]))  # what the pool gives (check_graph)
    with pytest.raises(ValueError, match=r"'n0'.*non-overlapping"):
        hw.compile_nir(overlapping)
    branched = chain(nir, affine, lif(nir, 4, 2e-3, 2.0), nir.Linear(weight=np.ones((1, 4))))
    branched.nodes["extra"] = nir.Linear(weight=np.ones((1, 4)))  # a second readout of the LIF: a branch
    branched.edges.extend([("n1", "extra"), ("extra", "output")])
    with pytest.raises(ValueError, match="'n1' feeds"):
        hw.compile_nir(branched, dt=1e-3)
    with pytest.raises(ValueError, match="v_threshold - v_leak must be >= 0"):
        hw.compile_nir(chain(nir, affine, lif(nir, 4, 2e-3, 2.0, threshold=-1.0), nir.Linear(weight=np.ones((1, 4)))),
                       dt=1e-3)
    mixed_tau = nir.LIF(tau=np.array([2e-3, 2e-3, 4e-3, 2e-3]), r=np.full(4, 2.0), v_leak=np.zeros(4),
                        v_threshold=np.ones(4), v_reset=np.zeros(4))
    with pytest.raises(ValueError, match=r"'n1'.*tau differs between neurons"):
        hw.compile_nir(chain(nir, affine, mixed_tau, nir.Linear(weight=np.ones((1, 4)))), dt=1e-3)
    with pytest.raises(TypeError, match="NIRGraph or a path"):
        hw.compile_nir(42)


def test_values_that_do_not_fit_name_layer_parameter_and_fix(hw, nir) -> None:
    positive = np.random.default_rng(0).uniform(0.5, 1.0, size=(2, 5000))  # not binary: magnitudes differ
    wide = chain(nir, nir.Affine(weight=positive, bias=np.zeros(2)), lif(nir, 2, 2e-3, 2.0),
                 nir.Linear(weight=np.ones((1, 2))), shape=(5000,))
    with pytest.raises(ValueError, match=r"layer 'n1'.*activation.*lower input_scale or weight_bits"):
        hw.compile_nir(wide, dt=1e-3)
    assert hw.compile_nir(wide, dt=1e-3, input_scale=1.0).quantization[0]["input_max"] == 1  # the fix works
    readout = chain(nir, nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)), lif(nir, 2, 2e-3, 2.0),
                    nir.Linear(weight=np.ones((1, 2))))
    with pytest.raises(ValueError, match=r"layer 'n2'.*v .*saturate.*fewer time_steps"):
        hw.compile_nir(readout, dt=1e-3, time_steps=10**6)
    tiny_alpha = nir.Affine(weight=np.array([[1e-7, -1e-7, 1e-7, 1e-7], [1.0, 1.0, -1.0, 1.0]]), bias=np.zeros(2))
    with pytest.raises(ValueError, match=r"layer 'n1'.*vth.*rescale it in the float model"):
        hw.compile_nir(chain(nir, tiny_alpha, lif(nir, 2, 2e-3, 2.0), nir.Linear(weight=np.ones((1, 2)))), dt=1e-3)
    for bad in ({"input_scale": 0}, {"input_scale": float("nan")}, {"weight_bits": 9}, {"weight_bits": 1},
                {"profile": "truenorth"}, {"time_steps": 0}):
        with pytest.raises(ValueError):
            hw.compile_nir(readout, dt=1e-3, **bad)
