"""Fuzz family nir (bso_deploy/bench/fuzz_nir.py): mutated NIR files give clean errors on every operation, valid
ones run as the graph they were written from; the issue's examples one by one; any damaged byte (hypothesis)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import require
from family_checks import assert_family_holds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bso_deploy.bench import fuzz_nir
from bso_deploy.errors import BsoDeployError, InvalidFileError

nir_io = require("bso_deploy.export.nir")
compiler = require("bso_deploy.hardware.compiler")


def test_seeded_cases_are_clean_or_accepted():
    counts = assert_family_holds(fuzz_nir, seed=15, count=50)
    assert counts["accepted"] >= 5


def mutated(tmp_path, mutation: str, seed: int = 3):
    path, _, _ = fuzz_nir.write_model(tmp_path, seed, "all")
    return fuzz_nir.MUTATIONS[mutation](path, np.random.default_rng(seed))


@pytest.mark.parametrize("mutation,message", [
    ("edge-cycle-to-input", r"0 Input nodes"),
    ("nodes-as-dataset", r"'nodes' of the graph must be a group of nodes"),
    ("link-loop", r"(links back to a group that contains it|is a SoftLink)"),
    ("external-link", r"is a ExternalLink"),
    ("deep-nesting", r"nested \d+ groups deep"),
    ("alpha-metadata", r"alpha|complex"),
    ("complex-parameter", r"complex"),
    ("string-parameter", r"(not numeric|must be a string|field)"),
    ("file-name-too-long", r"cannot be opened \(File name too long\)"),
    ("directory", r"not a regular file"),
])
def test_the_issues_examples_are_one_line_errors(tmp_path, mutation, message):
    path = mutated(tmp_path, mutation)
    for read in (nir_io.from_nir, compiler.compile_nir):
        with pytest.raises(BsoDeployError, match=message) as error:
            read(path)
        assert "\n" not in str(error.value)


def test_a_declared_256_x_2_28_weight_is_refused_before_reading(tmp_path):
    path, _, _ = fuzz_nir.write_model(tmp_path, 0)
    with nir_io.files.h5py.File(path, "r+") as file:
        group = file["node/nodes/affine_0"]
        del group["weight"]
        group.create_dataset("weight", shape=fuzz_nir.HUGE_WEIGHT_SHAPE, dtype="f4", chunks=(1, 1024), fillvalue=1)
    assert path.stat().st_size < 1 << 20  # a few bytes declare 256 GiB
    start = time.perf_counter()
    with pytest.raises(InvalidFileError, match=r"declares shape \(256, 268435456\)"):
        nir_io.read_nir_file(path)
    assert time.perf_counter() - start < 5


def test_an_input_shape_of_inf_is_refused(tmp_path):
    path, _, _ = fuzz_nir.write_model(tmp_path, 1)
    with nir_io.files.h5py.File(path, "r+") as file:
        del file["node/nodes/input/shape"]
        file["node/nodes/input"].create_dataset("shape", data=np.array([np.inf]))
    with pytest.raises(InvalidFileError, match=r"node 'input' \(Input\): declared shape 'input_type' must be a list of "
                                               r"integers >= 1, got \[inf\]"):
        nir_io.from_nir(path)


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path, _, graph = fuzz_nir.write_model(tmp_path_factory.mktemp("nir"), 5)
    return path.read_bytes(), graph


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damaged_bytes_read_or_fail_cleanly(tmp_path, valid_bytes, data):
    """Bytes overwritten anywhere in a valid file: the graph is read (and checks) or a BsoDeployError says why."""
    raw = bytearray(valid_bytes[0])
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "damaged.nir"
    path.write_bytes(bytes(raw))
    try:
        nir_io.check_graph(nir_io.read_nir_file(path))
    except BsoDeployError as error:
        assert str(error).strip() and "\n" not in str(error)
