"""`bso-deploy run` and `bso-deploy parity` through the command line, on real NIR files, compiled networks
and lava-dl netx files: (T, batch, ...) inputs, labels, clipped inputs, silent layers, model files told
apart by content."""

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import require

from bso_deploy.cli import main
from bso_deploy.models import build_mlp
from bso_deploy.neuron import LIFParameters

DT_HINT = "check --dt (Sinabs/IAF graphs use dt = 1, snnTorch 1e-4, Norse 1.1.0 1e-6, Rockpool 1e-3)"


@pytest.fixture
def nir_file(tmp_path, nir_io):
    torch.manual_seed(0)
    model = build_mlp((16, 24, 24, 5), seed=3).eval()
    with torch.no_grad():
        model.layers[0].weight.mul_(3.0)
    with pytest.warns(nir_io.NIRExportWarning):
        graph = nir_io.to_nir(model, dt=1e-3)
    return nir_io.write_nir(graph, tmp_path / "model.nir")


def last_json(capsys) -> tuple[dict, str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_run_sim_and_torch_write_identical_npz(tmp_path, nir_file, capsys):
    inputs = np.random.default_rng(0).random((3, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", inputs)
    outs = {}
    for backend in ("sim", "torch", "float"):
        out = tmp_path / f"{backend}.npz"
        assert main(["run", str(nir_file), "--backend", backend, "--inputs", str(tmp_path / "x.npy"),
                     "--time-steps", "6", "--record", "all", "--out", str(out)]) == 0
        outs[backend] = np.load(out)
    assert {"output", "latency", "predictions"} <= set(outs["sim"].files)
    assert any(name.startswith("spikes/") for name in outs["sim"].files)
    assert any(name.startswith("saturation/") for name in outs["sim"].files)
    assert int(outs["sim"]["latency"]) == 3 and int(outs["float"]["latency"]) == 0
    for key in outs["sim"].files:
        np.testing.assert_array_equal(outs["sim"][key], outs["torch"][key])
    assert outs["float"]["output"].shape[1:] == (3, 5)


def test_parity_json_reports_zero_mismatches_and_the_spike_metrics(tmp_path, nir_file, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((4, 16)).astype(np.float32))
    code = main(["parity", str(nir_file), "--backends", "sim,torch", "--inputs", str(tmp_path / "x.npy"),
                 "--samples", "4", "--time-steps", "4", "--json"])
    report, _ = last_json(capsys)
    assert code == 0 and report["mismatches"] == 0 and report["compared_spikes"] > 0
    assert {"backends", "samples", "mismatches", "float_accuracy", "fixed_accuracy"} <= report.keys()
    layers = set(report["float_fixed_agreement"])
    assert len(layers) == 2
    for key in ("spike_ratio", "spike_precision", "spike_recall", "float_spikes", "fixed_spikes"):
        assert set(report[key]) == layers
    assert report["saturation_backends"] == ["sim", "torch"] and report["saturation_mismatches"] == 0
    assert len(report["saturation"]) == 3 and layers < set(report["saturation"])  # the readout too
    assert report["model_kind"] == "nir" and report["input_clipped"] == 0
    for name in layers:
        assert report["spike_ratio"][name] == report["fixed_spikes"][name] / report["float_spikes"][name]


def test_parity_takes_sequence_inputs_without_time_steps_and_labels(tmp_path, nir_file, capsys):
    parity = require("bso_deploy.hardware.parity")
    x = np.random.default_rng(2).random((6, 10, 16))
    labels = np.arange(10) % 5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    code = main(["parity", str(nir_file), "--inputs", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--samples", "7", "--json"])
    report, _ = last_json(capsys)
    assert code == 0 and report["samples"] == 7 and report["time_steps"] == 6
    expected = parity.check_parity(str(nir_file), inputs=x[:, :7], labels=labels[:7]).to_dict()
    for key in ("fixed_accuracy", "float_accuracy", "prediction_agreement", "spike_ratio", "spike_recall"):
        assert report[key] == expected[key]
    assert 0.0 <= report["fixed_accuracy"] <= 1.0
    # the same file with labels of the wrong length, or float labels: one line, exit code 2
    np.save(tmp_path / "short.npy", labels[:9])
    np.save(tmp_path / "float.npy", labels.astype(np.float32))
    for bad, message in (("short.npy", "shape (9,) for 10 input samples"), ("float.npy", "integer class indices")):
        assert main(["parity", str(nir_file), "--inputs", str(tmp_path / "x.npy"), "--labels",
                     str(tmp_path / bad), "--json"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and str(tmp_path / bad) in err


def test_run_labels_give_the_accuracy(tmp_path, nir_file, capsys):
    x = np.random.default_rng(3).random((5, 12, 16))
    labels = np.random.default_rng(4).integers(0, 5, size=12)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    for backend in ("sim", "float"):
        out = tmp_path / f"{backend}.npz"
        assert main(["run", str(nir_file), "--backend", backend, "--inputs", str(tmp_path / "x.npy"), "--labels",
                     str(tmp_path / "y.npy"), "--out", str(out)]) == 0
        record, _ = last_json(capsys)
        assert record["accuracy"] == float(np.mean(np.load(out)["predictions"] == labels))
        assert record["steps"] == 5 + (3 if backend == "sim" else 0)
    np.save(tmp_path / "y5.npy", labels[:5])
    assert main(["run", str(nir_file), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"), "--labels",
                 str(tmp_path / "y5.npy"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "for 12 input samples" in capsys.readouterr().err


def test_clipped_inputs_are_counted_and_named(tmp_path, nir_file, capsys):
    x = np.full((4, 3, 16), 0.5)
    x[0, 0, :5] = 2.0  # above the default input range [0, 1]
    x[2, 1, 0] = 1.5
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(nir_file), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "o.npz")]) == 0
    record, err = last_json(capsys)
    assert record["input_clipped"] == 6
    warning = [line for line in err.splitlines() if "clipped" in line]
    assert len(warning) == 1 and warning[0].startswith("bso-deploy run: warning: 6 of 192 input values")
    assert "[0, 1]" in warning[0] and "--input-scale 127 or less" in warning[0]
    assert record["warnings"] == [warning[0].removeprefix("bso-deploy run: warning: ")]
    # following the advice: no clipping
    assert main(["run", str(nir_file), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"), "--input-range",
                 "2", "--input-scale", "127", "--out", str(tmp_path / "o.npz")]) == 0
    record, err = last_json(capsys)
    assert record["input_clipped"] == 0 and "clipped" not in err
    assert main(["parity", str(nir_file), "--inputs", str(tmp_path / "x.npy"), "--json"]) == 0
    report, err = last_json(capsys)
    assert report["input_clipped"] == 6 and "bso-deploy parity: warning: 6 of 192" in err


def if_graph_file(nir, path, threshold: float):
    """Input(4) -> Linear -> IF(8) -> Linear -> Output: with r = 1000 the gain r dt is 1 at dt = 1e-3."""
    rng = np.random.default_rng(7)
    nodes = {"input": nir.Input(input_type=np.array([4])), "syn_0": nir.Linear(weight=rng.random((8, 4))),
             "if_0": nir.IF(r=np.full(8, 1000.0), v_threshold=np.full(8, threshold), v_reset=np.zeros(8)),
             "readout": nir.Linear(weight=rng.random((3, 8))), "output": nir.Output(output_type=np.array([3]))}
    graph = nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), type_check=False)
    nir.write(str(path), graph)
    return path


@pytest.mark.parametrize("backend", ["float", "sim"])
def test_a_silent_layer_points_to_dt(tmp_path, nir, capsys, backend):
    model = if_graph_file(nir, tmp_path / "if.nir", threshold=1.0)
    np.save(tmp_path / "x.npy", np.ones((10, 2, 4)))
    for dt, silent in (("1e-3", False), ("1e-5", True)):
        assert main(["run", str(model), "--backend", backend, "--inputs", str(tmp_path / "x.npy"), "--dt", dt,
                     "--out", str(tmp_path / "o.npz")]) == 0
        record, err = last_json(capsys)
        assert (record["spike_counts"]["if_0"] == 0) == silent
        expected = [f"layer if_0 produced no spikes: {DT_HINT}"] if silent else []
        assert record["warnings"] == expected
        assert (f"bso-deploy run: warning: layer if_0 produced no spikes: {DT_HINT}" in err) == silent
    assert main(["parity", str(model), "--inputs", str(tmp_path / "x.npy"), "--dt", "1e-5", "--json"]) == 0
    report, err = last_json(capsys)
    assert report["warnings"] == [f"layer if_0 produced no spikes: {DT_HINT}"] and DT_HINT in err
    assert report["spike_ratio"] == {"if_0": None} and report["spike_recall"] == {"if_0": None}


def test_model_files_are_told_apart_by_content(tmp_path, nir_file, capsys):
    compiler = require("bso_deploy.hardware.compiler")
    x = np.random.default_rng(5).random((4, 3, 16))
    np.save(tmp_path / "x.npy", x)
    renamed = tmp_path / "graph.bin"  # a NIR graph under any name
    renamed.write_bytes(nir_file.read_bytes())
    compiled = compiler.compile_nir(str(nir_file), time_steps=4).save(tmp_path / "net.data")
    outputs = {}
    for name, path in (("nir", renamed), ("compiled", compiled)):
        out = tmp_path / f"{name}.npz"
        assert main(["run", str(path), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"), "--out",
                     str(out)]) == 0
        record, _ = last_json(capsys)
        assert record["model_kind"] == name
        outputs[name] = np.load(out)["output"]
    np.testing.assert_array_equal(outputs["nir"], outputs["compiled"])
    assert main(["parity", str(compiled), "--inputs", str(tmp_path / "x.npy"), "--json"]) == 0
    report, err = last_json(capsys)
    assert report["float_model"] is False and report["prediction_agreement"] is None
    assert report["float_fixed_agreement"] == {} and report["spike_ratio"] == {} and report["mismatches"] == 0
    assert "no float model" in err
    for args, message in (
        (["--backend", "float"], "the float backend needs the NIR graph"),
        (["--backend", "sim", "--input-scale", "16"], "--input-scale apply to NIR graphs only"),
        (["--backend", "sim", "--profile", "loihi"], "compiled for profile 'bso', not 'loihi'"),
    ):
        assert main(["run", str(compiled), *args, "--inputs", str(tmp_path / "x.npy"), "--out",
                     str(tmp_path / "o.npz")]) == 2
        assert message in capsys.readouterr().err
    h5py = require("h5py")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.create_dataset("data", data=np.zeros(3))
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    (tmp_path / "text.net").write_text("not a network\n")
    for bad in ("other.h5", "plain.npz", "text.net"):
        for command in (["run", "--backend", "sim", "--out", str(tmp_path / "o.npz")], ["parity"]):
            assert main([command[0], str(tmp_path / bad), *command[1:], "--inputs", str(tmp_path / "x.npy")]) == 2
            err = capsys.readouterr().err.strip()
            assert err == (f"bso-deploy {command[0]}: error: {tmp_path / bad} is neither a NIR graph, a compiled "
                           "network (.npz) nor a lava-dl netx file")


def test_a_netx_file_runs_as_the_network_it_holds(tmp_path, nir_io, capsys):
    netx = require("bso_deploy.export.netx")
    backends = require("bso_deploy.hardware.backends")
    model = build_mlp((16, 12, 4), binary="none", lif=LIFParameters(reset="zero"), seed=1).eval()
    graph = nir_io.to_nir(model, dt=1e-3)
    fx_net = netx.compile_for_netx(graph, input_scale=16, time_steps=5)
    path = netx.write_netx(fx_net, tmp_path / "model.net")
    x = np.random.default_rng(6).random((5, 4, 16))
    np.save(tmp_path / "x.npy", np.round(x * 16))  # what the network was compiled for: netx holds integers only
    assert main(["run", str(path), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"), "--record", "all",
                 "--out", str(tmp_path / "o.npz")]) == 0
    record, err = last_json(capsys)
    assert record["model_kind"] == "netx" and record["spike_counts"][fx_net.layers[-1].name] == 0
    assert record["warnings"] == [] and "warning" not in err  # its readout is a LIF that never fires
    ran = np.load(tmp_path / "o.npz")
    direct = backends.run_fixed(netx.from_netx(path), "sim", np.round(x * 16), record=True)
    np.testing.assert_array_equal(ran["output"], direct.output)
    for name in direct.layers:
        np.testing.assert_array_equal(ran[f"spikes/{name}"], direct.layers[name])
    hidden = fx_net.layers[0].name  # the integers of the compiled network, read back from the file
    expected = backends.run_fixed(fx_net, "sim", x, record=True).layers[hidden]
    assert expected.sum() > 0
    np.testing.assert_array_equal(ran[f"spikes/{hidden}"], expected)
    assert main(["parity", str(path), "--inputs", str(tmp_path / "x.npy"), "--json"]) == 0
    report, _ = last_json(capsys)
    assert report["model_kind"] == "netx" and report["float_model"] is False and report["mismatches"] == 0


def test_run_bad_inputs_and_backend(tmp_path, nir_file, capsys):
    assert main(["run", str(nir_file), "--backend", "sim", "--inputs", str(tmp_path / "none.npy"),
                 "--out", str(tmp_path / "o.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.full((2, 16), np.nan, dtype=np.float32))
    assert main(["run", str(nir_file), "--backend", "sim", "--inputs", str(tmp_path / "bad.npy"),
                 "--time-steps", "2", "--out", str(tmp_path / "o.npz")]) == 2
    assert "nan" in capsys.readouterr().err.lower()
    np.save(tmp_path / "x.npy", np.zeros((2, 16), dtype=np.float32))
    assert main(["run", str(nir_file), "--backend", "gpu", "--inputs", str(tmp_path / "x.npy"),
                 "--time-steps", "2", "--out", str(tmp_path / "o.npz")]) == 2
    assert "valid backends" in capsys.readouterr().err
    assert main(["parity", str(nir_file), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert "pass time_steps" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.nir"), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "o.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
