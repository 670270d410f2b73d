"""hardware/compile_report.py: the typed quantization report. Its JSON form is what compile_nir stores in
``FixedPointNetwork.quantization`` (same keys, same order); it reads back from a saved network; what is not
a compiler report (a hand-built network, netx records, a bad entry) is a ValueError naming the keys."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from bso_deploy.hardware.compile_report import LayerQuantization, QuantizationReport, ThresholdFold
from bso_deploy.hardware.network import FixedPointNetwork
from conftest import require


@pytest.fixture(scope="module")
def compiler(nir):
    """The compiler module (needs nir)."""
    return require("bso_deploy.hardware.compiler")


def mlp_graph(nir, thresholds=(1.0, 1.0, 1.0)):
    """Input (4,) -> Affine -> LIF (3, zero reset) -> Affine -> Output (2,), dt 1 ms, tau 2 ms."""
    rng = np.random.default_rng(0)
    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "fc": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.array([0.1, -0.2, 0.0])),
        "lif": nir.LIF(tau=np.full(3, 2e-3), r=np.full(3, 2.0), v_leak=np.zeros(3),
                       v_threshold=np.array(thresholds, dtype=np.float64), v_reset=np.zeros(3)),
        "out": nir.Affine(weight=rng.normal(size=(2, 3)), bias=np.zeros(2)),
        "output": nir.Output(output_type=np.array([2])),
    }
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), metadata={"dt": 1e-3},
                        type_check=False)


@pytest.mark.parametrize("options", [{}, {"calibration": "data"}, {"profile": "loihi", "fold_thresholds": True,
                                                                   "netx_compatible": True}])
def test_json_form_is_what_the_network_stores_and_reads_back(compiler, nir, tmp_path, options) -> None:
    if options.get("calibration") == "data":
        options = {"calibration": np.random.default_rng(1).random((5, 8, 4))}
    graph = mlp_graph(nir, thresholds=(1.0, 0.5, 2.0) if options.get("fold_thresholds") else (1.0,) * 3)
    fx_net = compiler.compile_nir(graph, time_steps=5, **options)
    report = QuantizationReport.from_network(fx_net)
    entries = report.to_dicts()
    assert entries == [dict(entry) for entry in fx_net.quantization]
    assert [list(entry) for entry in entries] == [list(entry) for entry in fx_net.quantization]  # key order too
    assert json.dumps(entries) == json.dumps(list(fx_net.quantization))
    assert QuantizationReport.from_network(FixedPointNetwork.load(fx_net.save(tmp_path / "net.npz"))) == report
    assert report.time_steps == 5
    assert [entry.layer for entry in report.layers] == [layer.name for layer in fx_net.layers]
    first = report.layers[0]
    assert (first.input_scale, first.input_max) == (fx_net.input_scale, fx_net.input_max)
    assert all(layer.input_scale is None for layer in report.layers[1:])
    assert isinstance(first.scale, float) and first.nodes == ("fc", "lif")
    if "calibration" in options:
        assert first.scaling == "calibrated" and first.calibration_spikes is not None
    if options.get("fold_thresholds"):
        assert isinstance(first.threshold_fold, ThresholdFold) and first.netx_compatible
        assert first.threshold_fold.row_scale_min < first.threshold_fold.row_scale_max
        assert entries[0]["threshold_fold"] == first.threshold_fold.to_dict() and entries[0]["netx_compatible"]
    else:
        assert "threshold_fold" not in entries[0] and "netx_compatible" not in entries[0]


def test_fields_at_their_default_are_absent_and_syn_decay_error_is_kept(compiler, nir) -> None:
    entry = QuantizationReport.from_network(compiler.compile_nir(mlp_graph(nir))).layers[0]
    data = entry.to_dict()
    assert data["syn_decay_error"] is None  # a LIF has no current: the key is there, its value None
    assert {"bias_correction", "note", "floor_compensation", "calibration_margin"}.isdisjoint(data)
    assert LayerQuantization.from_dict(data) == entry


def test_what_is_not_a_compiler_report_is_a_value_error_naming_the_keys(compiler, nir) -> None:
    fx_net = compiler.compile_nir(mlp_graph(nir))
    entries = [dict(entry) for entry in fx_net.quantization]
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        LayerQuantization.from_dict({**entries[1], "colour": "red"})
    without_scale = {key: value for key, value in entries[1].items() if key != "scale"}
    with pytest.raises(ValueError, match=r"missing keys \['scale'\]"):
        LayerQuantization.from_dict(without_scale)
    with pytest.raises(ValueError, match="the first with 'time_steps'"):
        QuantizationReport.from_dicts(entries[1:])
    with pytest.raises(ValueError, match="not compiled by compile_nir"):
        QuantizationReport.from_network(FixedPointNetwork(fx_net.profile, fx_net.input_shape, fx_net.layers))
    netx_like = FixedPointNetwork(fx_net.profile, fx_net.input_shape, fx_net.layers,
                                  quantization=({"source": "netx", "time_steps": 4}, {"source": "netx"}))
    with pytest.raises(ValueError, match="netx imports carry netx's records"):
        QuantizationReport.from_network(netx_like)
    with pytest.raises(ValueError, match="scaling must be one of calibrated, worst-case"):
        LayerQuantization.from_dict({**entries[1], "scaling": "optimistic"})
    with pytest.raises(ValueError, match="time_steps must be an integer >= 1"):
        QuantizationReport(layers=QuantizationReport.from_network(fx_net).layers, time_steps=0)
