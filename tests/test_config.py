"""bso_deploy.config.TrainConfig: validation errors name the field and the valid values; to_dict/from_dict
round trip with a version; the derived properties."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bso_deploy.config import CONFIG_VERSION, DEFAULT_THRESHOLDS, TrainConfig
from bso_deploy.neuron import LIFParameters


def test_the_defaults_are_the_digits_tbso_run():
    config = TrainConfig()
    assert (config.dataset, config.method, config.model, config.time_steps, config.hidden) == (
        "digits", "tbso", "mlp", 4, (256, 256))
    assert config.online and config.flip_threshold == DEFAULT_THRESHOLDS["tbso"] == 5e-7


@pytest.mark.parametrize(("field", "value", "message"), [
    ("dataset", "imagenet",
     "unknown dataset 'imagenet'; valid: digits, mnist, fashion-mnist, cifar10, nmnist, dvsgesture"),
    ("method", "adam", "unknown method 'adam'; valid: tbso, bso, bop, bptt-ste"),
    ("model", "resnet", "unknown model 'resnet'; valid: mlp, vgg, cnn"),
    ("cnn", "32C3-P2-F10", "bad CNN block 'F10' in '32C3-P2-F10': use <channels>C3 (3x3 conv, channels >= 1) or "
     "P<k> (k x k pooling, k >= 2), separated by '-', e.g. 32C3-P2-64C3-P2"),
    ("batchnorm", "group", "unknown BatchNorm statistics 'group'; valid: shared, per-step, running"),
    ("lr_schedule", "step", "unknown learning-rate schedule 'step'; valid: constant, cosine"),
    ("binary", "some", "unknown binary layer choice 'some'; valid: hidden, all, none"),
    ("encoder", "latency", "unknown encoder 'latency'; valid: direct, rate, frames"),
    ("reset", "hard", "unknown reset mode 'hard'; valid: subtract, zero"),
    ("fp_optimizer", "rmsprop", "unknown full-precision optimizer 'rmsprop'; valid: sgd, adam"),
    ("device", "tpu", "unknown device 'tpu'; valid: cpu, cuda, cuda:N, auto"),
    ("time_steps", 0, "time_steps must be an integer >= 1, got 0"),
    ("epochs", 2.5, "epochs must be an integer >= 1, got 2.5"),
    ("batch_size", -1, "batch_size must be an integer >= 1, got -1"),
    ("num_workers", -1, "num_workers and decay_every must be >= 0"),
    ("threshold", -1e-3, "threshold must be >= 0, got -0.001"),
    ("momentum", 1.0, "momentum must be in [0, 1), got 1.0"),
    ("variance_decay", -0.1, "variance_decay must be in [0, 1), got -0.1"),
    ("mse_weight", 1.5, "mse_weight must be in [0, 1], got 1.5"),
    ("lr", 0.0, "lr and ste_lr must be > 0, bop_gamma in (0, 1), decay_factor in (0, 1]"),
    ("bop_gamma", 1.0, "lr and ste_lr must be > 0, bop_gamma in (0, 1), decay_factor in (0, 1]"),
    ("tau", 1.0, "LIF tau must be > 1 time step (decay 1 - 1/tau in (0, 1)), got 1.0"),
    ("v_threshold", 0.0, "LIF threshold must be > 0, got 0.0"),
    ("hardware_aware", 1, "hardware_aware must be True or False, got 1"),
    ("hardware_aware_epochs", 0, "hardware_aware_epochs must be an integer >= 1, got 0"),
    ("fixed_point_samples", -5, "fixed_point_samples must be an integer >= 0 (0: no fixed-point evaluation), got -5"),
])
def test_a_bad_field_is_a_value_error_naming_it(field, value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        TrainConfig(**{field: value})


def test_cuda_devices_by_index_are_valid_names():
    assert TrainConfig(device="cuda:1").device == "cuda:1"


def test_hardware_aware_training_needs_an_online_method_and_unsigned_inputs():
    with pytest.raises(ValueError, match=re.escape("method 'bptt-ste' is not online. Use one of tbso, bso, bop")):
        TrainConfig(method="bptt-ste", hardware_aware=True)
    with pytest.raises(ValueError, match="use --encoder rate"):
        TrainConfig(dataset="cifar10", hardware_aware=True)
    assert TrainConfig(dataset="cifar10", encoder="rate", hardware_aware=True).hardware_aware
    with pytest.raises(ValueError, match="hardware-aware training folds one set of BatchNorm statistics"):
        TrainConfig(batchnorm="per-step", hardware_aware=True)


def test_the_last_hardware_aware_epochs_run_the_integer_forward():
    config = TrainConfig(epochs=6, hardware_aware=True, hardware_aware_epochs=2)
    assert [config.is_hardware_aware_epoch(epoch) for epoch in range(6)] == [False] * 4 + [True] * 2
    assert not TrainConfig(epochs=6).is_hardware_aware_epoch(5)
    assert all(TrainConfig(epochs=3, hardware_aware=True, hardware_aware_epochs=5).is_hardware_aware_epoch(e)
               for e in range(3))


@pytest.mark.parametrize("method", ["tbso", "bso", "bop", "bptt-ste"])
def test_flip_threshold_defaults_per_method_unless_given(method):
    assert TrainConfig(method=method).flip_threshold == DEFAULT_THRESHOLDS[method]
    assert TrainConfig(method=method, threshold=0.25).flip_threshold == 0.25
    assert TrainConfig(method=method).online == (method != "bptt-ste")


def test_lif_parameters_carry_the_neuron_fields():
    config = TrainConfig(tau=3.0, v_threshold=0.5, reset="zero", surrogate_alpha=2.0)
    assert config.lif_parameters() == LIFParameters(tau=3.0, threshold=0.5, reset="zero", alpha=2.0)


def test_to_dict_from_dict_round_trip():
    config = TrainConfig(dataset="mnist", method="bop", hidden=(32, 16, 8), threshold=1e-6, data_root="/data",
                         hardware_aware=True, fixed_point_samples=0, model="cnn", cnn="8C3-P2",
                         batchnorm="running", lr_schedule="cosine")
    data = config.to_dict()
    assert data["version"] == CONFIG_VERSION and data["hidden"] == [32, 16, 8]
    assert set(data) == {f.name for f in dataclasses.fields(TrainConfig)} | {"version"}
    assert TrainConfig.from_dict(data) == config
    assert TrainConfig.from_dict({"method": "bso"}) == TrainConfig(method="bso")  # missing keys: defaults


def test_from_dict_refuses_other_versions_and_unknown_keys():
    with pytest.raises(ValueError, match="config version 2 is not supported"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "version": 2})
    with pytest.raises(ValueError, match=re.escape("unknown config keys ['colour', 'size']")):
        TrainConfig.from_dict({"size": 1, "colour": "red"})
    with pytest.raises(ValueError, match="unknown method"):  # values are validated as in the constructor
        TrainConfig.from_dict({"method": "sgd"})


def test_the_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3
