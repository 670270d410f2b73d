"""`bso-deploy run` and `bso-deploy parity` through the command line, on a real NIR file."""

import json

import numpy as np
import pytest
import torch

from bso_deploy.cli import main
from bso_deploy.models import build_mlp


@pytest.fixture
def nir_file(tmp_path, nir_io):
    torch.manual_seed(0)
    model = build_mlp((16, 24, 24, 5), seed=3).eval()
    with torch.no_grad():
        model.layers[0].weight.mul_(3.0)
    with pytest.warns(nir_io.NIRExportWarning):
        graph = nir_io.to_nir(model, dt=1e-3)
    return nir_io.write_nir(graph, tmp_path / "model.nir")


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
    assert int(outs["sim"]["latency"]) == 3 and int(outs["float"]["latency"]) == 0
    for key in outs["sim"].files:
        np.testing.assert_array_equal(outs["sim"][key], outs["torch"][key])
    assert outs["float"]["output"].shape[1:] == (3, 5)


def test_parity_json_reports_zero_mismatches(tmp_path, nir_file, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((4, 16)).astype(np.float32))
    code = main(["parity", str(nir_file), "--backends", "sim,torch", "--inputs", str(tmp_path / "x.npy"),
                 "--samples", "4", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["mismatches"] == 0 and report["compared_spikes"] > 0
    assert {"backends", "samples", "mismatches", "float_accuracy", "fixed_accuracy"} <= report.keys()


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
