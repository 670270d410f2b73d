"""The fuzz framework (bso_deploy/bench/fuzz_cases.py): each outcome kind from a case built to produce it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from bso_deploy.bench.fuzz_cases import CliResult, FuzzCase, Outcome, run_case, run_cli
from bso_deploy.errors import InvalidFileError

TIMEOUT_S = 20.0


def raise_invalid(work: Path) -> None:
    raise InvalidFileError(f"{work / 'x.nir'}: not an HDF5 file; write it with bso-deploy export")


def raise_key_error(work: Path) -> None:
    return {}["nodes"]


def sleep_forever(work: Path) -> None:
    while True:
        time.sleep(1)


def return_value(work: Path) -> int:
    return 42


def exit_hard(work: Path) -> None:
    os._exit(3)


def write_marker(work: Path) -> Path:
    marker = work / "marker.txt"
    marker.write_text("written in the child's work dir")
    assert Path.cwd().resolve() == work.resolve()
    return marker


def case(action, expect="error", verify=None, name="c") -> FuzzCase:
    return FuzzCase(family="test", name=name, action=action, expect=expect, verify=verify)


def test_a_documented_error_is_clean():
    outcome = run_case(case(raise_invalid), TIMEOUT_S)
    assert outcome.kind == "clean"
    assert outcome.detail.startswith("InvalidFileError: ") and "not an HDF5 file" in outcome.detail


def test_a_raw_exception_is_a_crash_naming_its_type_and_place():
    outcome = run_case(case(raise_key_error), TIMEOUT_S)
    assert outcome.kind == "crash"
    assert outcome.detail.startswith("KeyError: 'nodes'") and "test_fuzz_cases.py" in outcome.detail


def test_a_hanging_case_is_killed_after_the_timeout():
    start = time.monotonic()
    outcome = run_case(case(sleep_forever), 1.0)
    elapsed = time.monotonic() - start
    assert outcome == Outcome("hang", "no result within 1 s")
    assert 1.0 <= elapsed < 10.0


def test_bad_input_accepted_without_error_is_garbage():
    outcome = run_case(case(return_value), TIMEOUT_S)
    assert outcome.kind == "garbage" and "42" in outcome.detail


def test_a_child_that_dies_is_a_crash_not_a_hang():
    outcome = run_case(case(exit_hard), TIMEOUT_S)
    assert outcome.kind == "crash" and "exit code 3" in outcome.detail


def test_accept_cases_verify_their_result_in_the_work_dir():
    def verify(result, work: Path) -> bool:
        return result == work / "marker.txt" and result.read_text().startswith("written")

    assert run_case(case(write_marker, "accept", verify), TIMEOUT_S).kind == "accepted"
    assert run_case(case(write_marker, "accept", lambda result, work: False), TIMEOUT_S).kind == "garbage"
    assert run_case(case(raise_invalid, "accept"), TIMEOUT_S).kind == "crash"
    assert run_case(case(return_value, "accept"), TIMEOUT_S).kind == "accepted"


def test_a_huge_allocation_fails_fast_in_the_child():
    outcome = run_case(case(lambda work: np.ones(1 << 37, dtype=np.uint8)), TIMEOUT_S)
    assert outcome.kind == "crash" and outcome.detail.startswith(("MemoryError", "numpy.core._exceptions"))


def test_the_command_line_missing_file_is_clean(tmp_path):
    missing = tmp_path / "missing.nir"
    outcome = run_case(case(lambda work: run_cli(["compile", str(missing), "--out", str(work / "n.npz")])),
                       TIMEOUT_S)
    assert outcome.kind == "clean", outcome
    assert "missing.nir" in outcome.detail


def test_the_command_line_usage_error_is_captured():
    result = run_cli(["compile", "--no-such-option"])
    assert result.code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_outcomes_are_classified_by_code_and_stderr():
    from bso_deploy.bench.fuzz_cases import classify_cli_error

    assert classify_cli_error(CliResult(2, "", "bso-deploy run: error: bad file\n")).kind == "clean"
    assert classify_cli_error(CliResult(0, "ok", "")).kind == "garbage"
    assert classify_cli_error(CliResult(2, "", "Traceback (most recent call last):\n  x\nKeyError\n")).kind == "crash"
    assert classify_cli_error(CliResult(2, "", "")).kind == "crash"
    assert classify_cli_error(CliResult(1, "", "bso-deploy run: error: x\n")).kind == "crash"


def test_case_and_outcome_validate_their_fields():
    with pytest.raises(ValueError, match="expect"):
        case(return_value, expect="maybe")
    with pytest.raises(ValueError, match="verify"):
        case(return_value, expect="error", verify=lambda result, work: True)
    with pytest.raises(ValueError, match="kind"):
        Outcome("fine", "")
    with pytest.raises(ValueError, match="timeout"):
        run_case(case(return_value), 0)
