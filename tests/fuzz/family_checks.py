"""What the family tests of tests/fuzz share: run a family's seeded cases in forked children and assert that
none crashed, returned garbage or hung, and that its accept cases ran (rejecting everything cannot pass).

``make test`` runs a sample of each family's draw: every accept case (a valid input must give the right
result) and :data:`ERROR_CASES` error cases, one per kind of damage first. ``bso-deploy bench fuzz`` runs
thousands of cases of every family."""

from __future__ import annotations

import collections
from types import ModuleType

import numpy as np

from bso_deploy.bench.fuzz_cases import FuzzCase, run_case

TIMEOUT_S = 60.0
ERROR_CASES = 30  # error cases run per family test, of distinct kinds where the draw has that many


def case_kind(case: FuzzCase) -> str:
    """A case's kind: its name without the seed (``"compile:raw-pickle/979365818"`` -> ``"compile:raw-pickle"``)."""
    return case.name.rsplit("/", 1)[0]


def sample(cases: list[FuzzCase], error_cases: int) -> list[FuzzCase]:
    """Every accept case of ``cases`` and ``error_cases`` of its error cases: the first of each kind, then the
    next ones in the order drawn; the order drawn kept."""
    errors = [index for index, case in enumerate(cases) if case.expect == "error"]
    first_of_kind = {case_kind(cases[index]): index for index in reversed(errors)}  # the earliest index wins
    chosen = set(sorted(first_of_kind.values())[:error_cases])
    chosen.update([index for index in errors if index not in chosen][:max(0, error_cases - len(chosen))])
    return [case for index, case in enumerate(cases) if case.expect == "accept" or index in chosen]


def assert_family_holds(module: ModuleType, seed: int, count: int,
                        error_cases: int = ERROR_CASES) -> collections.Counter:
    """Draw ``count`` cases of ``module`` with ``seed`` and run the sample of them (:func:`sample`); every
    outcome is clean or accepted, and both kinds occur. Returns the counts per outcome kind."""
    cases = module.cases(np.random.default_rng(seed), count)
    assert len(cases) == count and len({case.name for case in cases}) > count // 2
    run = sample(cases, error_cases)
    assert sum(case.expect == "error" for case in run) == min(error_cases, sum(c.expect == "error" for c in cases))
    counts: collections.Counter = collections.Counter()
    failures = []
    for case in run:
        outcome = run_case(case, TIMEOUT_S)
        counts[outcome.kind] += 1
        if outcome.kind not in ("clean", "accepted"):
            failures.append(f"{outcome.kind} {case.family}/{case.name}: {outcome.detail}")
    assert not failures, "\n".join(failures)
    assert counts["clean"] > 0 and counts["accepted"] > 0, counts
    return counts
