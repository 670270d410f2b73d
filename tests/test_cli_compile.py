"""`bso-deploy compile`: a NIR graph or a training checkpoint to NET.npz (a FixedPointNetwork) and NET.json
(its quantization report); the .npz runs in `run` exactly as the graph compiled on the fly; worst-case and
calibrated scaling; bad calibration data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import require
from helpers import randomise_batchnorm

from bso_deploy.checkpoint import model_payload, save_checkpoint
from bso_deploy.cli import main
from bso_deploy.config import TrainConfig

STEPS = 64


@pytest.fixture
def if_graph(tmp_path, nir):
    """Input(6) -> Linear -> IF(16) -> Linear -> IF(8) -> Linear -> Output, dt = 1 (Sinabs' convention):
    no leak, so the worst-case voltage bound grows with the steps (docs/fixed-point.md §10.3)."""
    rng = np.random.default_rng(11)

    def neuron(n):
        return nir.IF(r=np.ones(n), v_threshold=np.full(n, 1.0), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type=np.array([6])), "syn_0": nir.Linear(weight=rng.normal(0.3, 0.3, (16, 6))),
             "if_0": neuron(16), "syn_1": nir.Linear(weight=rng.normal(0.1, 0.3, (8, 16))), "if_1": neuron(8),
             "readout": nir.Linear(weight=rng.normal(0, 0.5, (3, 8))), "output": nir.Output(output_type=np.array([3]))}
    graph = nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)), metadata={"dt": 1.0}, type_check=False)
    path = tmp_path / "if.nir"
    nir.write(str(path), graph)
    return path


def event_counts(seed: int, samples: int) -> np.ndarray:
    """(STEPS, samples, 6) integer event counts 0 ... 3."""
    return np.random.default_rng(seed).poisson(0.6, size=(STEPS, samples, 6)).clip(0, 3).astype(np.float64)


def compile_to(tmp_path, model, name: str, *args: str) -> tuple[dict, dict]:
    out = tmp_path / f"{name}.npz"
    assert main(["compile", str(model), "--out", str(out), *args]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    return json.loads(out.with_suffix(".json").read_text()), out


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_compile_writes_the_network_and_its_report_and_runs_like_the_graph(tmp_path, if_graph, capsys):
    network = require("bso_deploy.hardware.network")
    report, out = compile_to(tmp_path, if_graph, "worst", "--time-steps", str(STEPS))
    printed = last_json(capsys)
    assert printed["out"] == str(out) and printed["scaling"] == "worst-case" and printed["time_steps"] == STEPS
    fx_net = network.FixedPointNetwork.load(out)
    assert report["profile"] == fx_net.profile == "bso" and report["scaling"] == "worst-case"
    assert report["input_scale"] == fx_net.input_scale and report["input_max"] == fx_net.input_max
    assert report["time_steps"] == STEPS and report["calibration"] is None
    assert report["layers"] == [layer.name for layer in fx_net.layers] == ["if_0", "if_1", "readout"]
    assert report["quantization"] == [dict(entry) for entry in fx_net.quantization] and len(report["quantization"]) == 3
    np.save(tmp_path / "x.npy", event_counts(1, 5) / 3)  # within the default input range [0, 1]
    outputs = {}
    for name, model in (("compiled", out), ("graph", if_graph)):
        assert main(["run", str(model), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"), "--record", "all",
                     "--out", str(tmp_path / f"{name}-run.npz")]) == 0
        outputs[name] = np.load(tmp_path / f"{name}-run.npz")
    assert set(outputs["compiled"].files) == set(outputs["graph"].files)
    for key in outputs["graph"].files:
        np.testing.assert_array_equal(outputs["compiled"][key], outputs["graph"][key])
    assert outputs["graph"]["spikes/if_0"].sum() > 0


def test_calibrated_and_worst_case_scaling_differ(tmp_path, if_graph, capsys):
    np.save(tmp_path / "calibration.npy", event_counts(2, 16))
    worst, _ = compile_to(tmp_path, if_graph, "worst", "--input-range", "3", "--input-scale", "1",
                          "--time-steps", str(STEPS))
    calibrated, out = compile_to(tmp_path, if_graph, "calibrated", "--calibrate-on", str(tmp_path / "calibration.npy"))
    assert worst["scaling"] == "worst-case" and calibrated["scaling"] == "calibrated"
    assert calibrated["time_steps"] == STEPS  # the calibration data's
    assert calibrated["input_scale"] == 1.0 and calibrated["input_max"] == 3  # event counts keep their integers
    scales = [[entry["scale"] for entry in report["quantization"]] for report in (worst, calibrated)]
    assert all(c > w for w, c in zip(scales[0][:2], scales[1][:2])), scales  # IF layers over 64 steps
    check = calibrated["calibration"]
    assert check["source"] == str(tmp_path / "calibration.npy") and check["samples"] == 16
    assert check["time_steps"] == STEPS and check["input_clipped"] == 0
    assert set(check["saturation"]) == {"if_0", "if_1", "readout"} and set(check["spike_ratio"]) == {"if_0", "if_1"}
    # the same calibration on the fly in run gives the compiled network's outputs
    np.save(tmp_path / "x.npy", event_counts(3, 4))
    runs = {}
    for name, model, extra in (("file", out, []), ("fly", if_graph, ["--calibrate-on",
                                                                     str(tmp_path / "calibration.npy")])):
        assert main(["run", str(model), "--backend", "torch", "--inputs", str(tmp_path / "x.npy"), *extra,
                     "--out", str(tmp_path / f"{name}.npz")]) == 0
        runs[name] = np.load(tmp_path / f"{name}.npz")["output"]
    np.testing.assert_array_equal(runs["file"], runs["fly"])
    # explicit --scaling worst-case with calibration data ignores the activity
    explicit, _ = compile_to(tmp_path, if_graph, "explicit", "--calibrate-on", str(tmp_path / "calibration.npy"),
                             "--scaling", "worst-case")
    assert explicit["scaling"] == "worst-case"
    assert [entry["scale"] for entry in explicit["quantization"]] == scales[0]


def test_compile_a_checkpoint_calibrated_on_digits(tmp_path, nir_io, capsys):
    from bso_deploy.run import build_network

    config = TrainConfig(dataset="digits", hidden=(16, 12), reset="subtract", method="bso", time_steps=4)
    model = randomise_batchnorm(build_network(config, (64,), 10), 3)
    payload = {**model_payload(model), "config": config.to_dict(), "epoch": 2, "optimizers": {}, "history": []}
    checkpoint = save_checkpoint(tmp_path / "checkpoint.pt", payload)
    report, out = compile_to(tmp_path, checkpoint, "digits", "--calibrate-on", "digits", "--calibration-samples",
                             "20")
    assert report["source_kind"] == "checkpoint" and report["scaling"] == "calibrated"
    assert report["time_steps"] == 4 and report["calibration"]["samples"] == 20  # the checkpoint's T
    assert report["input_shape"] == [64] and len(report["layers"]) == 3
    assert main(["parity", str(out), "--dataset", "digits", "--samples", "8", "--json"]) == 0
    assert last_json(capsys)["mismatches"] == 0


def test_bad_calibration_data_and_arguments_are_one_line_errors(tmp_path, if_graph, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((STEPS, 4, 5)))
    nan = event_counts(4, 4)
    nan[3, 1, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "garbage.bin").write_bytes(b"\x00" * 64)
    np.save(tmp_path / "x.npy", event_counts(5, 2))
    compiled = tmp_path / "net.npz"
    assert main(["compile", str(if_graph), "--out", str(compiled), "--time-steps", "8"]) == 0
    capsys.readouterr()
    cases = [
        (["--calibrate-on", str(tmp_path / "wrong.npy")], f"calibration data {tmp_path / 'wrong.npy'}: inputs have "
                                                           "shape (64, 4, 5)"),
        (["--calibrate-on", str(tmp_path / "nan.npy")], f"calibration data {tmp_path / 'nan.npy'}: inputs hold 1 "
                                                         "NaN/Inf"),
        (["--calibrate-on", str(tmp_path / "none.npy")], "calibration file"),
        (["--scaling", "calibrated"], "--scaling calibrated needs calibration data"),
        (["--scaling", "best"], "unknown scaling 'best'; valid: calibrated, worst-case"),
        (["--calibration-samples", "4"], "--calibration-samples needs --calibrate-on"),
    ]
    for args, message in cases:
        assert main(["compile", str(if_graph), "--out", str(tmp_path / "o.npz"), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("bso-deploy compile: error: ")
    assert main(["run", str(if_graph), "--backend", "sim", "--inputs", str(tmp_path / "x.npy"), "--calibrate-on",
                 str(tmp_path / "nan.npy"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "calibration data" in capsys.readouterr().err
    for model, args, message in (
        (if_graph, ["--out", str(tmp_path / "o.json")], "must end in .npz"),
        (compiled, ["--out", str(tmp_path / "o.npz")], "is already a compiled network"),
        (tmp_path / "garbage.bin", ["--out", str(tmp_path / "o.npz")], "is neither a NIR graph, a compiled network"),
    ):
        assert main(["compile", str(model), *args]) == 2
        assert message in capsys.readouterr().err


def test_a_netx_file_is_converted_as_it_is(tmp_path, nir_io, capsys):
    netx = require("bso_deploy.export.netx")
    network = require("bso_deploy.hardware.network")
    from bso_deploy.models import build_mlp
    from bso_deploy.neuron import LIFParameters

    model = build_mlp((16, 12, 4), binary="none", lif=LIFParameters(reset="zero"), seed=2).eval()
    fx_net = netx.compile_for_netx(nir_io.to_nir(model, dt=1e-3), input_scale=16, time_steps=5)
    path = netx.write_netx(fx_net, tmp_path / "model.net")
    report, out = compile_to(tmp_path, path, "converted", "--profile", "loihi")
    assert report["source_kind"] == "netx" and report["scaling"] is None and report["profile"] == "loihi"
    assert network.FixedPointNetwork.load(out) == netx.from_netx(path)
    for args, message in ((["--input-scale", "4"], "--input-scale apply to NIR graphs only"),
                          (["--profile", "bso"], "compiled for profile 'loihi', not 'bso'")):
        assert main(["compile", str(path), "--out", str(tmp_path / "o.npz"), *args]) == 2
        assert message in capsys.readouterr().err
