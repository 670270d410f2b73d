"""Fuzz family network (bso_deploy/bench/fuzz_network.py): mutated compiled networks (.npz) give clean errors from
FixedPointNetwork.load, simulate and the commands, valid ones load equal and simulate alike; any JSON value in
any field of meta (hypothesis) loads a valid network or raises InvalidFileError."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointNetwork
from family_checks import assert_family_holds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bso_deploy.bench import fuzz_network
from bso_deploy.errors import InvalidFileError, MissingFileError


def test_seeded_cases_are_clean_or_accepted():
    counts = assert_family_holds(fuzz_network, seed=15, count=50)
    assert counts["accepted"] >= 5


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return fuzz_network.write_network(tmp_path_factory.mktemp("network"), 2)


def test_a_header_declaring_2_36_values_is_refused_before_reading(tmp_path, saved):
    path = tmp_path / "net.npz"
    path.write_bytes(saved[0].read_bytes())
    fuzz_network.MUTATIONS["huge-declared-array"](path, np.random.default_rng(0))
    start = time.perf_counter()
    with pytest.raises(InvalidFileError, match=r"not a saved FixedPointNetwork: entry 'layers/\d/weight' declares"):
        FixedPointNetwork.load(path)
    assert time.perf_counter() - start < 5


def test_deeply_nested_meta_and_missing_files_are_clean(tmp_path, saved):
    path = tmp_path / "net.npz"
    path.write_bytes(saved[0].read_bytes())
    fuzz_network.MUTATIONS["meta-deeply-nested"](path, np.random.default_rng(0))
    with pytest.raises(InvalidFileError, match="nests deeper than"):
        FixedPointNetwork.load(path)
    with pytest.raises(MissingFileError, match="does not exist"):
        FixedPointNetwork.load(tmp_path / "absent.npz")
    with pytest.raises(InvalidFileError, match="File name too long"):
        FixedPointNetwork.load(tmp_path / ("n" * 300 + ".npz"))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) |
                           st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=6)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_in_any_meta_field_loads_or_is_refused(tmp_path, saved, data):
    arrays, meta = fuzz_network._read(saved[0])
    layer = data.draw(st.sampled_from([None, *range(len(meta["layers"]))]))
    target = meta if layer is None else meta["layers"][layer]
    field = data.draw(st.sampled_from(sorted(target)))
    value = data.draw(JSON_VALUES)
    target[field] = value
    path = tmp_path / "net.npz"
    fuzz_network._write(path, arrays, meta)
    try:
        loaded = FixedPointNetwork.load(path)
    except InvalidFileError as error:
        assert "\n" not in str(error) and str(path) in str(error)
        return
    # accepted: the value must be one the format allows, and saving the network again round-trips exactly
    again = FixedPointNetwork.load(loaded.save(tmp_path / "again.npz"))
    assert again == loaded, (field, json.dumps(value)[:80])
