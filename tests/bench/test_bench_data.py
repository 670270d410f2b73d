"""``bso-deploy bench data --quick`` on digits for real, through the command line: every row holds measured
figures (finite, accuracies in [0, 1]), the deployment figures agree with the library's own
``fixed_point_metrics`` on the cached model, the snnTorch baseline is measured, the targets are evaluated,
and a second run reuses the cached models. No timed assertions."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from conftest import require

from bso_deploy.bench.data import (
    DEPLOYMENT_BATCH,
    MEMORY_TIME_STEPS,
    THROUGHPUT_TIME_STEPS,
    DataBenchConfig,
    DigitsImageRun,
    command_line,
    settings,
)
from bso_deploy.bench.data_report import TARGETS
from bso_deploy.cli import build_parser, main
from bso_deploy.data import make_loaders
from bso_deploy.encoding import make_encoder
from bso_deploy.hardware_aware_metrics import fixed_point_metrics
from bso_deploy.options import DATA_BENCH_METHODS, DATA_BENCH_MODELS
from bso_deploy.run import TrainingRun

REPORT_KEYS = {"dataset", "rows", "baselines", "targets", "settings", "command", "seconds"}
ROW_KEYS = {"model", "method", "time_steps", "epochs", "batch_size", "train_samples", "test_accuracy",
            "test_accuracy_per_epoch", "train_accuracy", "epoch_seconds", "train_samples_per_second",
            "test_samples", "float_accuracy", "fixed_accuracy", "prediction_agreement", "float_torch_seconds",
            "sim_seconds", "profile", "error", "cached", "run_folder", "activation_bytes",
            f"samples_per_second_T{THROUGHPUT_TIME_STEPS}", f"samples_per_second_T{THROUGHPUT_TIME_STEPS}_per_round",
            f"throughput_ratio_T{THROUGHPUT_TIME_STEPS}", "peak_training_activation_bytes"}
ACCURACIES = ("test_accuracy", "train_accuracy", "float_accuracy", "fixed_accuracy", "prediction_agreement")
POSITIVE = ("epoch_seconds", "train_samples_per_second", "float_torch_seconds", "sim_seconds",
            f"samples_per_second_T{THROUGHPUT_TIME_STEPS}", "peak_training_activation_bytes")


CNN_TRAIN_SAMPLES = 256  # of the 1347 digits training images: the CNN's rows measured on fewer, sooner


def run_quick(tmp_path, *options: str) -> dict:
    code = main(["bench", "data", "--dataset", "digits", "--quick", "--seed", "1", "--out", str(tmp_path / "bench"),
                 "--cache", str(tmp_path / "cache"), "--cnn-train-samples", str(CNN_TRAIN_SAMPLES), "--no-progress",
                 *options])
    assert code == 0
    return json.loads((tmp_path / "bench" / "data_digits.json").read_text())


def assert_measured_cost(record: dict) -> None:
    memory = record["activation_bytes"]
    assert set(memory) == {str(t) for t in MEMORY_TIME_STEPS} and all(v > 0 for v in memory.values())
    speed = record[f"samples_per_second_T{THROUGHPUT_TIME_STEPS}"]
    assert math.isfinite(speed) and speed > 0
    assert record[f"samples_per_second_T{THROUGHPUT_TIME_STEPS}_per_round"] == [speed]  # quick: one round


def test_quick_data_bench_on_digits_measures_every_row(tmp_path, capsys) -> None:
    require("snntorch")
    report = run_quick(tmp_path)
    assert set(report) == REPORT_KEYS and report["dataset"] == "digits"
    assert (tmp_path / "bench" / "data_digits.png").stat().st_size > 0
    assert report["settings"]["quick"] is True and report["settings"]["seed"] == 1
    assert report["command"].startswith("bso-deploy bench data --dataset digits") and "--quick" in report["command"]
    assert f"--cnn-train-samples {CNN_TRAIN_SAMPLES}" in report["command"]
    rows = report["rows"]
    assert [(r["model"], r["method"]) for r in rows] == [(m, k) for m in DATA_BENCH_MODELS for k in DATA_BENCH_METHODS]
    for row in rows:
        assert set(row) == ROW_KEYS, set(row) ^ ROW_KEYS
        assert row["error"] is None and row["profile"] == "bso" and row["test_samples"] == 450
        for key in ACCURACIES:
            assert 0.0 <= row[key] <= 1.0, (row["model"], row["method"], key)
        for key in POSITIVE:
            assert math.isfinite(row[key]) and row[key] > 0, (row["model"], row["method"], key)
        assert row["test_accuracy"] == row["float_accuracy"]  # eval mode both, the same test set
        assert row["cached"] == {"training": False, "deployment": False}
        assert_measured_cost(row)
        assert_agreement_from_predictions(row)
    trained = {model: {r["train_samples"] for r in rows if r["model"] == model} for model in DATA_BENCH_MODELS}
    assert max(trained["cnn"]) <= CNN_TRAIN_SAMPLES < min(trained["mlp"]), trained  # the CNN on the first 256
    online = [r for r in rows if r["method"] != "bptt-ste"]
    bptt = [r for r in rows if r["method"] == "bptt-ste"]
    low, high = (str(t) for t in (min(MEMORY_TIME_STEPS), max(MEMORY_TIME_STEPS)))
    assert all(r["activation_bytes"][high] == r["activation_bytes"][low] for r in online)
    assert all(r["activation_bytes"][high] > 1.5 * r["activation_bytes"][low] for r in bptt)
    assert [(b["model"], b["method"]) for b in report["baselines"]] == [(m, "snntorch-bptt") for m in DATA_BENCH_MODELS]
    for baseline in report["baselines"]:
        assert_measured_cost(baseline)
        assert baseline["activation_bytes"][high] > 1.5 * baseline["activation_bytes"][low]  # BPTT grows with T
    assert_targets(report)
    table = capsys.readouterr().out
    assert "bench data: digits" in table and "snntorch-bptt" in table and "tbso_mlp_accuracy" in table

    again = run_quick(tmp_path, "--models", "cnn", "--methods", "tbso")  # the model and deployment from the cache
    (second,) = again["rows"]
    first = next(r for r in rows if (r["model"], r["method"]) == ("cnn", "tbso"))
    assert second["cached"] == {"training": True, "deployment": True}
    for key in (*ACCURACIES, "epoch_seconds", "sim_seconds", "run_folder"):
        assert first[key] == second[key]
    assert again["targets"]["tbso_mlp_accuracy"]["met"] is None  # no MLP row this time: no figure


def assert_agreement_from_predictions(row: dict) -> None:
    """The row's deployment figures, recomputed by ``fixed_point_metrics`` on the cached model."""
    run = DigitsImageRun.resume(row["run_folder"]) if row["model"] == "cnn" else TrainingRun.resume(row["run_folder"])
    run.model.set_online(True)  # HardwareAwareNetwork wants the online form; inference is the same (BPTT-STE too)
    _, test_loader = make_loaders(run.split, DEPLOYMENT_BATCH, seed=run.config.seed)
    metrics = fixed_point_metrics(run.model, test_loader, make_encoder(run.config.encoder), run.config.time_steps,
                                  run.model.layers[0].weight.device, tuple(run.split.input_shape))
    assert metrics["samples"] == row["test_samples"]
    assert metrics["fixed_accuracy"] == row["fixed_accuracy"] and metrics["float_accuracy"] == row["float_accuracy"]
    assert metrics["float_fixed_agreement"] == row["prediction_agreement"]


def assert_targets(report: dict) -> None:
    targets = report["targets"]
    assert set(targets) == set(TARGETS)
    for name, target in targets.items():
        assert target["threshold"] == TARGETS[name]["threshold"]
        assert target["met"] in (True, False) and math.isfinite(target["value"]), name  # every model was run
        if target["kind"] in ("accuracy", "throughput"):
            assert target["met"] == (target["value"] >= target["threshold"])
        else:
            assert target["met"] == (target["value"] <= target["threshold"] + 1e-12)
    tbso = {r["model"]: r for r in report["rows"] if r["method"] == "tbso"}
    assert targets["tbso_mlp_accuracy"]["value"] == tbso["mlp"]["test_accuracy"]
    mlp = tbso["mlp"]
    assert targets["tbso_mlp_fixed_point"]["value"] == abs(mlp["float_accuracy"] - mlp["fixed_accuracy"])
    ratio = mlp[f"throughput_ratio_T{THROUGHPUT_TIME_STEPS}"]
    assert targets["tbso_mlp_throughput"]["value"] == ratio
    baseline = next(b for b in report["baselines"] if b["model"] == "mlp")
    key = f"samples_per_second_T{THROUGHPUT_TIME_STEPS}"
    assert ratio == pytest.approx(mlp[key] / baseline[key], rel=1e-12)  # quick: one round, so the plain ratio


def test_parser_defaults_are_the_config_defaults() -> None:
    values = vars(build_parser().parse_args(["bench", "data"]))
    renamed = {"out_dir": "out", "cache_dir": "cache"}
    for field in dataclasses.fields(DataBenchConfig):
        expected = getattr(DataBenchConfig(), field.name)
        value = values[renamed.get(field.name, field.name)]
        if isinstance(expected, tuple) and isinstance(value, str):
            value = tuple(value.split(","))
        assert value == expected, field.name


@pytest.mark.parametrize("changes,message", [
    ({"dataset": "cifar10"}, "unknown data set 'cifar10' for bench data; valid: digits, mnist, fashion-mnist"),
    ({"models": ("vgg",)}, "models must be distinct names among mlp, cnn"),
    ({"methods": ("tbso", "tbso")}, "methods must be distinct names"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"cnn_epochs": 0}, "cnn_epochs must be None or an integer >= 1"),
    ({"cnn_train_samples": 0}, "cnn_train_samples must be None or an integer >= 1"),
    ({"lr_schedule": "step"}, "unknown learning-rate schedule 'step'"),
    ({"cnn_method_epochs": (("sgd", 1),)}, "cnn_method_epochs must be distinct"),
    ({"cnn_method_epochs": (("bso", 1), ("bso", 2))}, "cnn_method_epochs must be distinct"),
    ({"cnn_method_epochs": (("bso", 0),)}, "cnn_method_epochs must be distinct"),
])
def test_bad_settings_are_one_line_errors(changes, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DataBenchConfig(**changes)


def test_cnn_method_epochs_set_the_cnn_epochs_of_those_methods_only() -> None:
    args = build_parser().parse_args(["bench", "data", "--epochs", "7", "--cnn-epochs", "5",
                                      "--cnn-method-epochs", "bso=1,bptt-ste=2"])
    assert args.cnn_method_epochs == (("bso", 1), ("bptt-ste", 2))
    config = DataBenchConfig(epochs=7, cnn_epochs=5, cnn_method_epochs=args.cnn_method_epochs)
    assert [config.train_config("cnn", m).epochs for m in ("tbso", "bso", "bptt-ste")] == [5, 1, 2]
    assert [config.train_config("mlp", m).epochs for m in ("tbso", "bso", "bptt-ste")] == [7, 7, 7]
    assert "--cnn-method-epochs bso=1,bptt-ste=2" in command_line(config)
    assert settings(config)["epochs_per_row"]["cnn/bso"] == 1


@pytest.mark.parametrize("text,message", [("bso=0", "'bso=0' is not method=N"), ("bso=1,bso=2", "given twice"),
                                          ("adam=1", "unknown method 'adam'")])
def test_bad_cnn_method_epochs_are_one_line_errors(text, message, capsys) -> None:
    assert main(["bench", "data", "--cnn-method-epochs", text]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_unknown_data_set_on_the_command_line_is_a_one_line_error(capsys) -> None:
    assert main(["bench", "data", "--dataset", "cifar10"]) == 2
    err = capsys.readouterr().err.strip()
    assert "argument --dataset: unknown data set 'cifar10'" in err and len(err.splitlines()) == 1
