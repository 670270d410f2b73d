"""validate.check_graph: the one graph check every backend calls (float importer, compiler)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require


@pytest.fixture(scope="module")
def validate():
    return require("bso_deploy.export.nir.validate")


def lif(nir, n: int):
    return nir.LIF(tau=np.full(n, 2e-3), r=np.full(n, 2.0), v_leak=np.zeros(n), v_threshold=np.ones(n))


def graph(nir, nodes: dict, edges: list, **metadata):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def mlp(nir, input_shape=(3,), output_shape=(2,)):
    nodes = {"input": nir.Input(input_type=np.array(input_shape)),
             "fc": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)), "lif": lif(nir, 2),
             "output": nir.Output(output_type=np.array(output_shape))}
    return graph(nir, nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])


@pytest.mark.parametrize("input_shape, output_shape", [((3,), (2,)), ((1, 3), (1, 1, 2)), ((1, 1, 3), (2, 1))])
def test_declared_shapes_may_add_size_one_axes(nir, validate, input_shape, output_shape):
    checked = validate.check_graph(mlp(nir, input_shape, output_shape))
    assert checked.input_shape == (3,) and checked.output_shape == (2,)
    assert checked.order == ("input", "fc", "lif", "output") and not checked.delayed


@pytest.mark.parametrize("input_shape, output_shape, message", [
    ((4,), (2,), r"node 'fc' \(Affine\): receives shape \(4,\)"),
    ((3, 1, 2), (2,), r"node 'fc' \(Affine\): receives shape \(3, 1, 2\)"),
    ((3,), (1, 3), r"node 'output' \(Output\): receives shape \(2,\) but declares shape \(1, 3\)"),
    ((3,), (2, 2), r"node 'output' \(Output\): receives shape \(2,\) but declares shape \(2, 2\)"),
])
def test_declared_shapes_that_do_not_fit(nir, validate, input_shape, output_shape, message):
    with pytest.raises(ValueError, match=message):
        validate.check_graph(mlp(nir, input_shape, output_shape))


def test_a_loop_through_a_neuron_is_recurrent(nir, validate):
    nodes = {"input": nir.Input(input_type=np.array([2])), "lif": lif(nir, 2),
             "rec": nir.Linear(weight=np.eye(2)), "output": nir.Output(output_type=np.array([2]))}
    edges = [("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    checked = validate.check_graph(graph(nir, nodes, edges))
    assert checked.delayed == frozenset({("lif", "rec")})
    assert checked.order.index("rec") < checked.order.index("lif")  # rec reads the previous step's spikes
    assert checked.sources("lif") == (["input", "rec"], []) and checked.sources("rec") == ([], ["lif"])


def test_a_loop_without_a_neuron_names_its_nodes(nir, validate):
    nodes = {"input": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=np.eye(2)),
             "b": nir.Scale(scale=np.ones(2)), "lif": lif(nir, 2), "output": nir.Output(output_type=np.array([2]))}
    edges = [("input", "a"), ("a", "b"), ("b", "a"), ("a", "lif"), ("lif", "output")]
    with pytest.raises(ValueError, match=r"nodes \['a', 'b'\] form a cycle without a neuron node"):
        validate.check_graph(graph(nir, nodes, edges))


def test_inputs_outputs_and_edges(nir, validate):
    nodes = {"input": nir.Input(input_type=np.array([3])), "in2": nir.Input(input_type=np.array([3])),
             "fc": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
             "output": nir.Output(output_type=np.array([2]))}
    with pytest.raises(ValueError, match=r"2 Input nodes \['input', 'in2'\]"):
        validate.check_graph(graph(nir, nodes, [("input", "fc"), ("in2", "fc"), ("fc", "output")]))
    del nodes["in2"]
    with pytest.raises(ValueError, match=r"'ghost'"):
        validate.check_graph(graph(nir, nodes, [("input", "fc"), ("fc", "ghost"), ("fc", "output")]))
    nodes["output2"] = nir.Output(output_type=np.array([2]))
    with pytest.raises(ValueError, match=r"2 Output nodes"):
        validate.check_graph(graph(nir, nodes, [("input", "fc"), ("fc", "output")]))
    undeclared = {"input": nir.Input(input_type={"input": None}), "output": nir.Output(output_type=np.array([3]))}
    with pytest.raises(ValueError, match=r"node 'input' \(Input\) lacks the required field 'input_type'"):
        validate.check_graph(graph(nir, undeclared, [("input", "output")]))


def test_the_float_backend_uses_the_same_check(nir, nir_io, validate):
    # what check_graph refuses, from_nir refuses with the same message; what it accepts, from_nir runs
    bad = mlp(nir, (3,), (2, 2))
    with pytest.raises(ValueError) as from_check:
        validate.check_graph(bad)
    with pytest.raises(ValueError) as from_import:
        nir_io.from_nir(bad, dt=1e-3)
    assert str(from_import.value) == str(from_check.value)
    module = nir_io.from_nir(mlp(nir, (1, 3), (1, 1, 2)), dt=1e-3)
    assert module.input_shape == (3,) and module(torch.ones(4, 5, 3)).shape == (4, 5, 2)


def test_missing_dt_names_every_exporter(nir, nir_io):
    with pytest.raises(ValueError) as error:
        nir_io.from_nir(mlp(nir))
    message = str(error.value)
    for convention in ("Sinabs IAF/IF graphs dt=1 ", "snnTorch dt=1e-4", "Norse 1.1.0 dt=1e-6", "Rockpool dt=1e-3",
                       "['lif']"):
        assert convention in message, (convention, message)
    assert "\n" not in message
