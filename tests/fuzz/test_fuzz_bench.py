"""The driver of ``bso-deploy bench fuzz`` (bso_deploy/bench/fuzz.py): families spread over --cases, the table,
bench/fuzz.json with its totals; the command's options."""

from __future__ import annotations

import json

import pytest

from bso_deploy.bench import fuzz
from bso_deploy.cli import build_parser


def test_cases_are_spread_over_the_families():
    assert fuzz.split_cases(3000, 6) == [500] * 6
    assert fuzz.split_cases(14, 6) == [3, 3, 2, 2, 2, 2]
    assert [fuzz.family_name(name) for name in fuzz.FAMILY_MODULES] == ["nir", "netx", "network", "inputs",
                                                                       "checkpoints", "limits"]


def test_a_short_run_writes_the_report(tmp_path, capsys):
    out = tmp_path / "bench" / "fuzz.json"
    config = fuzz.FuzzBenchConfig(cases=6, seed=3, timeout_s=60, lava_faults=0, out=str(out))
    report = fuzz.run_fuzz_bench(config, progress=False)
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(report))
    totals = written["totals"]
    assert set(totals) == {"cases", "clean", "accepted", "crash", "garbage", "hang"}
    assert totals["cases"] == 6 == sum(totals[kind] for kind in ("clean", "accepted", "crash", "garbage", "hang"))
    assert [row["family"] for row in written["families"]] == ["nir", "netx", "network", "inputs", "checkpoints",
                                                              "limits"]
    assert written["failures"] == [] and written["lava_faults"] is None
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["family", "cases", "clean", "accepted", "crash", "garbage", "hang"]
    assert "total" in table and f"wrote {out}" in table


def test_the_command_line_defaults_and_checks():
    args = build_parser().parse_args(["bench", "fuzz"])
    assert (args.cases, args.seed, args.timeout, args.lava_faults, args.out, args.no_progress) == (
        fuzz.DEFAULT_CASES, 0, fuzz.DEFAULT_TIMEOUT_S, fuzz.DEFAULT_LAVA_FAULTS, "bench/fuzz.json", False)
    with pytest.raises(ValueError, match="--cases must be an integer >= 6"):
        fuzz.FuzzBenchConfig(cases=2)
    with pytest.raises(ValueError, match="--timeout must be > 0"):
        fuzz.FuzzBenchConfig(timeout_s=0)
    with pytest.raises(ValueError, match="--lava-faults must be an integer >= 0"):
        fuzz.FuzzBenchConfig(lava_faults=-1)
