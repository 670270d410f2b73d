"""Fuzz family limits (bso_deploy/bench/fuzz_limits.py): work past the memory budget is refused before it
allocates, work under it runs exactly; the budget's parsing and estimates (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.simulator import simulate
from family_checks import assert_family_holds
from hypothesis import given, settings
from hypothesis import strategies as st

from bso_deploy.bench import fuzz_limits
from bso_deploy.bench.fuzz_inputs import write_graph
from bso_deploy.checkpoint_checks import check_model_size
from bso_deploy.config import TrainConfig
from bso_deploy.errors import InvalidInputError, ResourceLimitError
from bso_deploy.limits import DEFAULT_MEMORY_LIMIT, MEMORY_LIMIT_VARIABLE, memory_limit, simulation_bytes


def test_seeded_cases_are_clean_or_accepted():
    assert_family_holds(fuzz_limits, seed=15, count=100)


@pytest.mark.parametrize(("text", "expected"), [("", DEFAULT_MEMORY_LIMIT), ("4096", 4096), ("512M", 512 << 20),
                                                ("16g", 16 << 30), ("2GB", 2 << 30), ("1.5K", 1536)])
def test_the_budget_is_read_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, text)
    assert memory_limit() == expected


@pytest.mark.parametrize("text", ["lots", "-5", "0", "1e400", "12X", "nan"])
def test_a_malformed_budget_is_a_one_line_error_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, text)
    with pytest.raises(InvalidInputError, match=MEMORY_LIMIT_VARIABLE):
        memory_limit()


@settings(max_examples=40, deadline=None)
@given(steps=st.integers(1, 60), batch=st.integers(1, 6), record=st.booleans(), slack=st.integers(-1, 1))
def test_simulate_runs_exactly_up_to_the_budget_and_refuses_one_byte_past_it(tmp_path_factory, steps, batch,
                                                                              record, slack):
    work = tmp_path_factory.mktemp("limits")
    fx_net = compile_nir(write_graph(work, steps), time_steps=4)
    x = np.random.default_rng(steps).integers(0, 256, size=(steps, batch, 16))
    need = simulation_bytes(steps, batch, 16, [layer.num_neurons for layer in fx_net.layers], record)
    expected = simulate(fx_net, x, record=record)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MEMORY_LIMIT_VARIABLE, str(need + slack))
        if slack < 0:
            with pytest.raises(ResourceLimitError, match=f"{need} bytes"):
                simulate(fx_net, x, record=record)
            return
        result = simulate(fx_net, x, record=record)
    np.testing.assert_array_equal(result.output, expected.output)
    for got, want in zip(result.spikes + result.v, expected.spikes + expected.v, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_billion_steps_are_refused_naming_the_size(tmp_path):
    fx_net = compile_nir(write_graph(tmp_path, 0), time_steps=4)
    view = np.broadcast_to(np.int64(1), (10**9, 1, 16))
    with pytest.raises(ResourceLimitError, match=r"10{9} time steps.*GiB.*" + MEMORY_LIMIT_VARIABLE):
        simulate(fx_net, view)


def test_models_past_the_budget_are_refused_before_they_are_built():
    check_model_size(TrainConfig(model="cnn", dataset="fashion-mnist"), (1, 28, 28), 10, "the default cnn")
    with pytest.raises(ResourceLimitError, match=r"the cnn \(90196900000 weights\)"):  # 9 (1 + 10^5) 10^5 + 196 10^6
        check_model_size(TrainConfig(model="cnn", cnn="100000C3-100000C3-P2", dataset="fashion-mnist"), (1, 28, 28),
                         10, "the cnn")
    with pytest.raises(ResourceLimitError, match="memory limit"):
        check_model_size(TrainConfig(hidden=(1 << 30, 8)), (64,), 10, "the mlp")
