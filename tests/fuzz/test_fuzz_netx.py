"""Fuzz family netx (bso_deploy/bench/fuzz_netx.py): mutated lava-dl netx files give clean errors from from_netx
and the commands, valid ones spike as the network written; NaN weights, which netx's astype(int) would turn
into -2**63, and a declared 256 x 2^28 weight are refused; any damaged byte (hypothesis)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import require
from family_checks import assert_family_holds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bso_deploy.bench import fuzz_netx
from bso_deploy.errors import BsoDeployError, InvalidFileError

h5py = require("h5py")
netx = require("bso_deploy.export.netx")


def test_seeded_cases_are_clean_or_accepted():
    counts = assert_family_holds(fuzz_netx, seed=15, count=50)
    assert counts["accepted"] >= 5


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return fuzz_netx.write_netx_model(tmp_path_factory.mktemp("netx"), 4)


def copy_of(written, tmp_path):
    path = tmp_path / "model.net"
    path.write_bytes(written[0].read_bytes())
    return path


def test_a_nan_weight_is_refused_not_cast(tmp_path, written):
    path = copy_of(written, tmp_path)
    with h5py.File(path, "r+") as file:
        weight = np.asarray(file["layer/0/weight"][()], dtype=np.float64)
        weight[0, 0] = np.nan
        del file["layer/0/weight"]
        file["layer/0"].create_dataset("weight", data=weight)
    with pytest.raises(InvalidFileError, match=r"layer 0 \(dense\): weight holds NaN, Inf"):
        netx.from_netx(path)


def test_a_declared_256_x_2_28_weight_is_refused_before_reading(tmp_path, written):
    path = copy_of(written, tmp_path)
    with h5py.File(path, "r+") as file:
        del file["layer/1/weight"]
        file["layer/1"].create_dataset("weight", shape=(256, 1 << 28), dtype="f4", chunks=(1, 1024), fillvalue=1)
    start = time.perf_counter()
    with pytest.raises(InvalidFileError, match=r"declares shape \(256, 268435456\)"):
        netx.from_netx(path)
    assert time.perf_counter() - start < 5


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damaged_bytes_read_or_fail_cleanly(tmp_path, written, data):
    raw = bytearray(written[0].read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "damaged.net"
    path.write_bytes(bytes(raw))
    try:
        netx.from_netx(path)
    except BsoDeployError as error:
        assert str(error).strip() and "\n" not in str(error)
