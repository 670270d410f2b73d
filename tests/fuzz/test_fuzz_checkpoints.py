"""Fuzz family checkpoint (bso_deploy/bench/fuzz_checkpoints.py): malformed checkpoints give one-line
CheckpointErrors on every reader (export, compile, resume, train --resume), valid ones load bit for bit;
config dicts of any field types are a config or a ValueError (hypothesis)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from family_checks import assert_family_holds
from hypothesis import given, settings
from hypothesis import strategies as st

from bso_deploy.bench import fuzz_checkpoints
from bso_deploy.bench.fuzz_inputs import MARKER
from bso_deploy.checkpoint import CheckpointError, load_checkpoint, load_trained_model
from bso_deploy.config import TrainConfig
from bso_deploy.errors import InvalidFileError
from bso_deploy.run import TrainingRun


def test_seeded_cases_are_clean_or_accepted():
    assert_family_holds(fuzz_checkpoints, seed=15, count=80)


def write(tmp_path: Path, mutation: str | None) -> Path:
    mutations = {**fuzz_checkpoints.MODEL_MUTATIONS, **fuzz_checkpoints.RESUME_MUTATIONS}
    return fuzz_checkpoints._write(tmp_path, None if mutation is None else mutations[mutation])


@pytest.mark.parametrize(("mutation", "message"), [
    ("hidden-none", "hidden must be a sequence of integers"), ("seed-string", "seed must be an integer, got 'x'"),
    ("device-cuda-abc", "unknown device 'cuda:abc'"), ("binary-list", "must be a dict with exactly the keys bits"),
    ("binary-no-bits", "keys bits and shape"), ("weight-nan", "NaN/Inf"), ("running-var-negative", "negative"),
    ("dataset-mnist", "names data set 'mnist'"), ("hidden-huge", "memory limit"), ("malicious-pickle", "corrupt")])
def test_each_reader_names_what_is_wrong(tmp_path, monkeypatch, mutation, message):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, mutation)
    for read in (load_trained_model, lambda p: TrainingRun.resume(p.parent)):
        with pytest.raises(InvalidFileError if mutation != "hidden-huge" else ValueError, match=message):
            read(path)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize(("mutation", "message"), [
    ("adam-no-step", r"lacks \['step'\]"), ("epoch-1e9", "epoch 1000000000 is past"), ("lr-string", "'lr' is 'fast'"),
    ("history-no-seconds", "history record 1 lacks"), ("adam-exp-avg-wrong-shape", "shape")])
def test_a_resumed_run_checks_its_optimizer_state_and_history(tmp_path, mutation, message):
    path = write(tmp_path, mutation)
    load_trained_model(path)  # the exporters do not read these entries
    with pytest.raises(CheckpointError, match=message):
        TrainingRun.resume(tmp_path)


def test_the_valid_checkpoint_resumes_bit_for_bit(tmp_path):
    write(tmp_path, None)
    run = TrainingRun.resume(tmp_path)
    expected = fuzz_checkpoints.base_document()
    state = run.model.state_dict()
    for name, value in expected["full_precision"].items():
        assert torch.equal(state[name], value), name
    saved = expected["optimizers"]["full_precision"]["state"]
    resumed = run.optimizers.full_precision.state_dict()["state"]
    assert sorted(saved) == sorted(resumed)
    for index in saved:
        assert torch.equal(saved[index]["exp_avg"], resumed[index]["exp_avg"])
    assert run.epoch == 1 and load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                         st.text(max_size=6), st.lists(st.integers(-2, 9), max_size=3), st.just([8, 8]),
                         st.just("cuda:abc"), st.just(math.inf))


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(sorted(TrainConfig().to_dict())), FIELD_VALUES, max_size=4))
def test_a_config_of_any_field_types_is_a_config_or_a_value_error(fields):
    data = {**copy.deepcopy(TrainConfig(hidden=(8, 8)).to_dict()), **fields}
    try:
        config = TrainConfig.from_dict(data)
    except ValueError as error:
        assert str(error).strip() and "\n" not in str(error)
    else:
        assert config == TrainConfig.from_dict(config.to_dict())
