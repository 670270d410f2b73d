"""The ``lava`` backend: ``check_parity(..., backends=("sim", "torch", "lava"))`` with 0 mismatches on a trained
digits model and on random graphs of both profiles, ``bso-deploy run --backend lava`` and ``bso-deploy parity
--backends sim,torch,lava``, and that the other backends never import Lava."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import require, require_lava


@pytest.fixture(scope="module")
def parity(nir_io):
    require_lava()
    return require("bso_deploy.hardware.parity")


def _export(nir_io, model, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nir_io.NIRExportWarning)
        return nir_io.to_nir(model, input_shape=shape)


def test_digits_model_has_no_mismatch_on_lava(parity, nir_io, tmp_path, record_property) -> None:
    """A digits MLP trained for one epoch (full-precision first layer, binary hidden layer with BatchNorm
    folded, readout), 150 test samples at T = 4: sim, torch and Lava agree on every spike, u and v."""
    config_module, run_module = require("bso_deploy.config"), require("bso_deploy.run")
    run = run_module.TrainingRun.create(config_module.TrainConfig(epochs=1, hidden=(64, 64)), tmp_path)
    run.fit(progress=False)
    graph = _export(nir_io, run.model.eval(), (64,))
    inputs, labels = require("bso_deploy.parity_data").dataset_samples("digits", 150)
    report = parity.check_parity(graph, backends=("sim", "torch", "lava"), inputs=inputs, labels=labels,
                                 time_steps=4)
    record_property("fixed_accuracy", report.fixed_accuracy)
    assert report.mismatches == 0 and report.first_divergence is None
    assert report.backends == ("sim", "torch", "lava") and report.samples == 150
    assert report.compared_spikes == 2 * 150 * 7 * (64 + 64)  # two pairs, 7 steps, both hidden layers
    assert report.fixed_accuracy > 0.5


@pytest.mark.parametrize("kind,seed", [("bso-mlp", 0), ("bso-conv", 1), ("loihi-mlp", 2)])
def test_random_graphs_have_no_mismatch_on_lava(parity, nir_io, kind: str, seed: int) -> None:
    from test_parity import random_graph

    graph, shape, profile = random_graph(nir_io, kind, seed)
    samples = 3 if profile == "loihi" else 16  # Lava's built-ins run one sample per Lava run
    inputs = np.random.default_rng(200 + seed).random((5, samples, *shape))
    report = parity.check_parity(graph, backends=("sim", "lava"), inputs=inputs, profile=profile)
    assert report.mismatches == 0 and report.compared_states > 0 and report.profile == profile


@pytest.fixture
def nir_file(tmp_path, nir_io):
    from bso_deploy.models import build_mlp

    model = build_mlp((16, 24, 24, 5), seed=3).eval()
    return nir_io.write_nir(_export(nir_io, model, (16,)), tmp_path / "model.nir")


def test_cli_run_and_parity_with_lava(parity, tmp_path, nir_file, capsys) -> None:
    from bso_deploy.cli import main

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((5, 16)).astype(np.float32))
    outs = {}
    for backend in ("sim", "lava"):
        out = tmp_path / f"{backend}.npz"
        assert main(["run", str(nir_file), "--backend", backend, "--inputs", str(tmp_path / "x.npy"),
                     "--time-steps", "4", "--record", "all", "--out", str(out)]) == 0
        outs[backend] = np.load(out)
    assert set(outs["sim"].files) == set(outs["lava"].files)
    for key in outs["sim"].files:
        np.testing.assert_array_equal(outs["lava"][key], outs["sim"][key], err_msg=key)
    capsys.readouterr()
    assert main(["parity", str(nir_file), "--backends", "sim,torch,lava", "--inputs", str(tmp_path / "x.npy"),
                 "--samples", "5", "--time-steps", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mismatches"] == 0 and report["backends"] == ["sim", "torch", "lava"]


def test_other_backends_do_not_import_lava() -> None:
    code = ("import sys, numpy as np; from bso_deploy.hardware.backends import BACKENDS; "
            "assert BACKENDS['lava'].kind == 'fixed'; print(any(m == 'lava' or m.startswith('lava.') "
            "for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
