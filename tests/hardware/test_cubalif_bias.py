"""CubaLIF graphs with biases on every backend (issue 12).

NIR's CubaLIF filters its synapse's bias through the current: ``i = (1 - dt/tau_syn) i + (dt/tau_syn) w_in
(W x + b)``. The compiler adds that bias to v at its steady-state value, ``g b tau_syn / dt``
(docs/fixed-point.md §10.2), which ``FloatLayer.bias`` holds; the float Lava neuron (``deploy(graph,
floating_pt=True)``) used to add ``FloatLayer.bias`` to the current, where it was filtered once more and
weighed tau_syn / dt times too much. Here:

- the integer backends agree exactly on such a graph: the NumPy simulator, the torch integer reference and Lava
  (profile ``bso``: bso-deploy's processes; profile ``loihi``: Lava's built-in Dense + LIF), spikes, u, v,
  output and saturation counts of every layer at every step;
- Lava's float network equals the NIR float executor (``from_nir``, float64), shifted by the synaptic delays
  (layer k runs float step t at step t + k + 1, docs/fixed-point.md §5.2): spikes exactly on a case whose
  voltages keep a margin from the threshold, u (the current times the membrane gain), v and the readout's
  running sum within float64 rounding.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import require, require_lava

DT = 1e-3  # seconds per step, written into the graph's metadata
TAU_SYN, TAU_MEM, R, W_IN = 3e-3, 4e-3, 1.5, 2.0
MEMBRANE_GAIN = R * DT / TAU_MEM  # NIR's Euler gain of the membrane: the float Lava u is this times i_syn


def cubalif_graph(nir, seed: int, reset: str, recurrent: bool = False, n_in: int = 6, hidden: int = 10,
                  n_out: int = 3):
    """Input -> Affine (nonzero bias) -> CubaLIF -> Affine (nonzero bias) -> Output, written with nir; with
    ``recurrent`` the CubaLIF also feeds an Affine (with a bias of its own) that feeds it back (§4.9)."""
    rng = np.random.default_rng(seed)

    def full(value: float) -> np.ndarray:
        return np.full(hidden, value, dtype=np.float64)

    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=rng.normal(0.1, 0.8, (hidden, n_in)), bias=rng.uniform(-0.4, 0.8, hidden)),
        "cuba": nir.CubaLIF(tau_syn=full(TAU_SYN), tau_mem=full(TAU_MEM), r=full(R), v_leak=full(0.0),
                            v_threshold=full(0.5), v_reset=full(0.0), w_in=full(W_IN), metadata={"reset": reset}),
        "fc2": nir.Affine(weight=rng.normal(0.0, 1.0, (n_out, hidden)), bias=rng.uniform(-0.5, 0.5, n_out)),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = list(itertools.pairwise(nodes))
    if recurrent:
        nodes["w_rec"] = nir.Affine(weight=rng.normal(0.0, 0.3, (hidden, hidden)), bias=rng.uniform(-0.2, 0.2, hidden))
        edges += [("cuba", "w_rec"), ("w_rec", "cuba")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT}, type_check=False)


@pytest.fixture(scope="module")
def hw(nir_io):
    require_lava()
    compiler, backends = require("bso_deploy.hardware.compiler"), require("bso_deploy.hardware.backends")
    return compiler, backends


@pytest.mark.parametrize(("profile", "reset", "recurrent", "seed"), [
    ("bso", "subtract", False, 0), ("bso", "zero", True, 1), ("loihi", "zero", False, 2), ("loihi", "zero", True, 3)])
def test_integer_backends_agree_exactly(nir, hw, profile: str, reset: str, recurrent: bool, seed: int) -> None:
    compiler, backends = hw
    graph = cubalif_graph(nir, seed, reset, recurrent)
    fx_net = compiler.compile_nir(graph, profile=profile, time_steps=8)
    hidden, readout = fx_net.layers
    assert np.any(hidden.bias_mant != 0) and np.any(readout.bias_mant != 0) and hidden.du < 4095
    assert "steady-state" in fx_net.quantization[0]["bias_note"]
    assert hidden.bias_delay == (1 if profile == "bso" else 0) and hidden.recurrent == recurrent
    rng = np.random.default_rng(10 + seed)
    inputs = rng.integers(0, fx_net.input_max + 1, (8, 6, 6)) * (rng.random((8, 6, 6)) < 0.6)
    inputs = np.concatenate([inputs, np.zeros((fx_net.latency, *inputs.shape[1:]), inputs.dtype)])
    results = {name: backends.BACKENDS[name].run(fx_net, inputs, True) for name in ("sim", "torch", "lava")}
    expected = results["sim"]
    assert expected.spikes[0].any() and not expected.spikes[0].all()
    for name, result in results.items():
        for field in ("spikes", "u", "v"):
            for k, (got, want) in enumerate(zip(getattr(result, field), getattr(expected, field), strict=True)):
                np.testing.assert_array_equal(got, want, err_msg=f"{profile} {name}: layer {k} {field}")
        np.testing.assert_array_equal(result.output, expected.output, err_msg=f"{profile} {name}: output")
        if name == "lava" and profile == "loihi":
            assert result.saturation == ()  # Lava's LIF counts nothing (§5.6)
            continue
        for k, (got, want) in enumerate(zip(result.saturation, expected.saturation, strict=True)):
            for field in want._fields:
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field),
                                              err_msg=f"{profile} {name}: layer {k} saturation {field}")


def _nir_float_trace(nir_io, graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """The NIR executor (float64) step by step: the CubaLIF's spikes, i_syn and v after reset, and the output."""
    executor = nir_io.from_nir(graph, dtype=torch.float64)
    executor.reset_state()
    trace: dict[str, list[np.ndarray]] = {"spikes": [], "i_syn": [], "v": [], "output": []}
    with torch.no_grad():
        for step in torch.as_tensor(x):
            trace["output"].append(executor.step(step).numpy())
            trace["spikes"].append(executor.last_outputs["cuba"].numpy())
            state = executor.node_state("cuba")
            trace["i_syn"].append(state.i_syn.numpy())
            trace["v"].append(state.v.numpy())
    return {name: np.stack(values) for name, values in trace.items()}


@pytest.mark.parametrize("recurrent", [False, True])
def test_float_lava_follows_the_nir_float_executor(nir, nir_io, hw, recurrent: bool) -> None:
    """Subtractive reset, so that v after reset shows each voltage's distance to the threshold: the margin is
    asserted, then spikes equal exactly and the states within float64 rounding. With the bias filtered twice
    (the old float neuron) u and v settled tau_syn / dt = 3 times too high and 27% of the spikes differed; the
    float network also dropped a recurrent synapse."""
    deploy = require("bso_deploy.hardware.lava.deploy").deploy
    graph = cubalif_graph(nir, 3, "subtract", recurrent)
    steps, batch = 12, 5
    x = np.random.default_rng(4).random((steps, batch, 6)) * (np.random.default_rng(5).random((steps, batch, 6)) < 0.5)
    expected = _nir_float_trace(nir_io, graph, x)
    fired = expected["spikes"] > 0
    threshold = 0.5
    margin = np.where(fired, expected["v"], threshold - expected["v"])  # v before reset minus / to the threshold
    assert fired.any() and not fired.all() and margin.min() > 1e-6
    with deploy(graph, floating_pt=True) as network:
        result = network.run(np.concatenate([x, np.zeros((2, batch, 6))]), record=True)
    hidden = slice(1, 1 + steps)  # layer 0 runs float step t at step t + 1
    np.testing.assert_array_equal(result.spikes[0][hidden], expected["spikes"])
    np.testing.assert_allclose(result.u[0][hidden], MEMBRANE_GAIN * expected["i_syn"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.v[0][hidden], expected["v"], rtol=1e-12, atol=1e-12)
    readout = result.output[2:2 + steps]  # the readout's v: the running sum of the graph's output
    np.testing.assert_allclose(readout, np.cumsum(expected["output"], axis=0), rtol=1e-10, atol=1e-10)
