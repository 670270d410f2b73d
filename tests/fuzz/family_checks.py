"""What the family tests of tests/fuzz share: run a family's seeded cases in forked children and assert that
none crashed, returned garbage or hung, and that its accept cases ran (rejecting everything cannot pass)."""

from __future__ import annotations

import collections
from types import ModuleType

import numpy as np

from bso_deploy.bench.fuzz_cases import run_case

TIMEOUT_S = 60.0


def assert_family_holds(module: ModuleType, seed: int, count: int) -> collections.Counter:
    """Run ``count`` cases of ``module`` drawn with ``seed``; every outcome is clean or accepted, and both
    kinds occur. Returns the counts per outcome kind."""
    cases = module.cases(np.random.default_rng(seed), count)
    assert len(cases) == count and len({case.name for case in cases}) > count // 2
    counts: collections.Counter = collections.Counter()
    failures = []
    for case in cases:
        outcome = run_case(case, TIMEOUT_S)
        counts[outcome.kind] += 1
        if outcome.kind not in ("clean", "accepted"):
            failures.append(f"{outcome.kind} {case.family}/{case.name}: {outcome.detail}")
    assert not failures, "\n".join(failures)
    assert counts["clean"] > 0 and counts["accepted"] > 0, counts
    return counts
