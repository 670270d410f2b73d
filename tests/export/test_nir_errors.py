"""Malformed NIR files and graphs give errors that name the file, node and field."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from bso_deploy.models import build_mlp
from bso_deploy.neuron import LIFParameters


@pytest.fixture(scope="module")
def h5py(nir):
    return require("h5py")


@pytest.fixture
def good_file(nir_io, tmp_path):
    """A small exported MLP: input(8) -> affine_0 -> lif_1 -> affine_2 -> output(3)."""
    model = build_mlp((8, 6, 3), binary="none", lif=LIFParameters(reset="zero"))
    return nir_io.write_nir(nir_io.to_nir(model), tmp_path / "good.nir")


def edit(h5py, path, node, field, value):
    with h5py.File(path, "r+") as file:
        group = file[f"node/nodes/{node}"]
        del group[field]
        if value is not None:
            group.create_dataset(field, data=value)


def test_good_file_reads(nir_io, good_file):
    module = nir_io.from_nir(good_file)
    assert module.input_shape == (8,) and module.output_shape == (3,) and module.dt == 1e-3


def test_missing_file(nir_io, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.nir"):
        nir_io.from_nir(tmp_path / "absent.nir")


def test_truncated_file(nir_io, good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"good\.nir is not a readable NIR file"):
        nir_io.from_nir(good_file)


def test_foreign_files(nir_io, h5py, tmp_path):
    text = tmp_path / "text.nir"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable NIR file"):
        nir_io.from_nir(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="not a NIR file"):
        nir_io.from_nir(other)


def test_missing_field(nir_io, h5py, good_file):
    edit(h5py, good_file, "affine_2", "weight", None)
    with pytest.raises(ValueError, match=r"node 'affine_2' \(Affine\) lacks the required field 'weight'"):
        nir_io.from_nir(good_file)


def test_missing_neuron_field(nir_io, h5py, good_file):
    edit(h5py, good_file, "lif_1", "tau", None)
    with pytest.raises(ValueError, match=r"node 'lif_1' \(LIF\) lacks the required field 'tau'"):
        nir_io.from_nir(good_file)


def test_nan_weight(nir_io, h5py, good_file):
    with h5py.File(good_file, "r") as file:
        weight = file["node/nodes/affine_0/weight"][()]
    weight[1, 2] = np.nan
    edit(h5py, good_file, "affine_0", "weight", weight)
    with pytest.raises(ValueError, match=r"node 'affine_0' \(Affine\): field 'weight' holds 1 NaN/Inf"):
        nir_io.from_nir(good_file)


def test_inf_threshold_and_negative_tau(nir_io, h5py, good_file):
    edit(h5py, good_file, "lif_1", "v_threshold", np.array([1.0, np.inf, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"'lif_1' \(LIF\): field 'v_threshold'"):
        nir_io.from_nir(good_file)
    edit(h5py, good_file, "lif_1", "v_threshold", np.ones(6))
    edit(h5py, good_file, "lif_1", "tau", -np.ones(6))
    with pytest.raises(ValueError, match=r"'lif_1' \(LIF\): field 'tau' must be > 0"):
        nir_io.from_nir(good_file)


def test_neuron_parameters_of_different_shapes(nir_io, h5py, good_file):
    edit(h5py, good_file, "lif_1", "r", np.ones(5))
    with pytest.raises(ValueError, match=r"'lif_1' \(LIF\): per-neuron parameters differ in shape"):
        nir_io.from_nir(good_file)


def test_weight_that_does_not_fit_its_neighbours(nir_io, h5py, good_file):
    edit(h5py, good_file, "affine_2", "weight", np.ones((3, 7)))  # lif_1 has 6 neurons
    with pytest.raises(ValueError, match=r"node 'affine_2' \(Affine\): receives shape \(6,\) but its weight"):
        nir_io.from_nir(good_file)


def test_bias_that_does_not_fit_the_weight(nir_io, h5py, good_file):
    edit(h5py, good_file, "affine_0", "bias", np.ones(4))
    with pytest.raises(ValueError, match=r"'affine_0' \(Affine\): field 'bias' has shape \(4,\), expected \(6,\)"):
        nir_io.from_nir(good_file)


def test_neuron_count_that_does_not_fit(nir, nir_io):
    nodes = {"input": nir.Input(input_type=np.array([2])),
             "fc": nir.Affine(weight=np.ones((4, 2)), bias=np.zeros(4)),
             "lif": nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
             "output": nir.Output(output_type=np.array([3]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                         type_check=False)
    message = r"node 'lif' \(LIF\): receives shape \(4,\) but its per-neuron parameters have shape \(3,\)"
    with pytest.raises(ValueError, match=message):
        nir_io.from_nir(graph, dt=1e-3)


def test_unsupported_node_type_in_a_file(nir_io, h5py, good_file):
    with h5py.File(good_file, "r+") as file:
        del file["node/nodes/affine_2/type"]
        file["node/nodes/affine_2"].create_dataset("type", data="Conv1d", dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match=r"node 'affine_2' has type 'Conv1d'.*supported types: Affine, AvgPool2d"):
        nir_io.from_nir(good_file)


def test_unsupported_node_type_in_a_graph(nir, nir_io):
    nodes = {"input": nir.Input(input_type=np.array([2])), "wait": nir.Delay(delay=np.ones(2)),
             "output": nir.Output(output_type=np.array([2]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "wait"), ("wait", "output")], type_check=False)
    with pytest.raises(ValueError, match=r"node 'wait' has type 'Delay'.*supported types:.*CubaLIF"):
        nir_io.from_nir(graph)


def test_nan_in_an_in_memory_graph(nir, nir_io):
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])),
                                "fc": nir.Linear(weight=np.array([[1.0, np.nan]])),
                                "output": nir.Output(output_type=np.array([1]))},
                         edges=[("input", "fc"), ("fc", "output")], type_check=False)
    with pytest.raises(ValueError, match=r"node 'fc' \(Linear\): field 'weight' holds 1 NaN/Inf"):
        nir_io.from_nir(graph)


def test_dt_missing(nir_io, h5py, good_file):
    with h5py.File(good_file, "r+") as file:
        del file["node/metadata/dt"]
        for node in ("lif_1",):
            del file[f"node/nodes/{node}/metadata/dt"]
    with pytest.raises(ValueError, match=r"records no time step.*pass dt="):
        nir_io.from_nir(good_file)
    assert nir_io.from_nir(good_file, dt=1e-3).dt == 1e-3


def test_algebraic_loop_and_dangling_edges(nir, nir_io):
    nodes = {"input": nir.Input(input_type=np.array([1])), "a": nir.Linear(weight=np.ones((1, 1))),
             "b": nir.Linear(weight=np.ones((1, 1))), "output": nir.Output(output_type=np.array([1]))}
    loop = [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")]
    with pytest.raises(ValueError, match=r"nodes \['a', 'b'\] form a cycle without a neuron node"):
        nir_io.from_nir(nir.NIRGraph(nodes=dict(nodes), edges=loop, type_check=False))
    dangling = [("input", "a"), ("a", "missing"), ("a", "output")]
    with pytest.raises(ValueError, match="'missing'"):
        nir_io.from_nir(nir.NIRGraph(nodes=dict(nodes), edges=dangling, type_check=False))


def test_reset_metadata_must_be_known(nir, nir_io):
    lif = nir.LIF(tau=np.ones(1), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1),
                  metadata={"reset": "sideways"})
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1])), "lif": lif,
                                "output": nir.Output(output_type=np.array([1]))},
                         edges=[("input", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(ValueError, match=r"node 'lif'.*reset='sideways'"):
        nir_io.from_nir(graph, dt=1e-3)


def test_not_a_graph(nir_io):
    with pytest.raises(TypeError, match=r"nir\.NIRGraph or a path"):
        nir_io.from_nir(42)
