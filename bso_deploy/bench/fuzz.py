"""``bso-deploy bench fuzz`` (issue 15): thousands of hostile-input cases, each in a forked child
(:func:`.fuzz_cases.run_case`), counted per family as clean / accepted / crash / garbage / hang.

The families are the modules of :data:`FAMILY_MODULES`; each exposes ``cases(rng, count)``. ``--cases N`` are
spread over them as evenly as possible (the first families take the remainder); family ``i`` draws from
``np.random.default_rng([seed, i])``, so one family's cases do not change when another family changes. The Lava
fault injection of :mod:`.fuzz_lava` (``run_faults``) runs after them and is reported under ``lava_faults``.

``bench/fuzz.json``: ``totals`` (``cases``, ``clean``, ``accepted``, ``crash``, ``garbage``, ``hang``),
``families`` (the same counts per family), ``failures`` (family, name, kind, detail of every crash, garbage or
hang case), ``lava_faults`` (``faults``, ``leaked_processes``, ``rows``, ...), ``seed``, ``timeout_s``,
``command``, ``seconds``. Target: no crash, garbage or hang over >= 3000 cases; no leaked Lava process.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..cli import resolve_command
from ..io import atomic_write_json
from .fuzz_cases import OUTCOME_KINDS, FuzzCase, Outcome, run_case

__all__ = ["DEFAULT_CASES", "FAMILY_MODULES", "FuzzBenchConfig", "format_table", "run_fuzz_bench"]

# Every family of cases, in the order they run (each a module with ``cases(rng, count)``).
FAMILY_MODULES = (
    "bso_deploy.bench.fuzz_nir",
    "bso_deploy.bench.fuzz_netx",
    "bso_deploy.bench.fuzz_network",
    "bso_deploy.bench.fuzz_inputs",
    "bso_deploy.bench.fuzz_checkpoints",
    "bso_deploy.bench.fuzz_limits",
)
LAVA_FAULTS_MODULE = "bso_deploy.bench.fuzz_lava"
# Command implementations imported before the first fork, so that no case's child pays for their imports.
WARM_COMMANDS = ("run", "compile", "parity", "export", "train")
DEFAULT_CASES = 3000
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_LAVA_FAULTS = 20
FAILURE_KINDS = ("crash", "garbage", "hang")


@dataclass(frozen=True)
class FuzzBenchConfig:
    """cases: in total over the families (>= 1 each); timeout_s: per case; lava_faults: injected faults (0: none)."""

    cases: int = DEFAULT_CASES
    seed: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    lava_faults: int = DEFAULT_LAVA_FAULTS
    out: str = "bench/fuzz.json"
    families: tuple[str, ...] = FAMILY_MODULES

    def __post_init__(self) -> None:
        if isinstance(self.cases, bool) or not isinstance(self.cases, int) or self.cases < len(self.families):
            raise ValueError(f"--cases must be an integer >= {len(self.families)} (one per family), got {self.cases!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"--timeout must be > 0 seconds, got {self.timeout_s!r}")
        if isinstance(self.lava_faults, bool) or not isinstance(self.lava_faults, int) or self.lava_faults < 0:
            raise ValueError(f"--lava-faults must be an integer >= 0, got {self.lava_faults!r}")
        if not self.families:
            raise ValueError("at least one fuzz family is needed")


def family_name(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1].removeprefix("fuzz_")


def load_family(module_name: str) -> ModuleType:
    """The family module (one of :data:`FAMILY_MODULES`), checked to expose ``cases``."""
    module = importlib.import_module(module_name)
    if not callable(getattr(module, "cases", None)):
        raise ImportError(f"fuzz family {module_name} has no cases(rng, count) function")
    return module


def split_cases(total: int, families: int) -> list[int]:
    """``total`` cases over ``families`` families: equal shares, the first ones take the remainder."""
    share, extra = divmod(total, families)
    return [share + (1 if index < extra else 0) for index in range(families)]


def counts_row(family: str, outcomes: list[Outcome]) -> dict[str, Any]:
    row: dict[str, Any] = {"family": family, "cases": len(outcomes)}
    row.update({kind: sum(outcome.kind == kind for outcome in outcomes) for kind in OUTCOME_KINDS})
    return row


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per family and a total line: cases and the count of each outcome kind."""
    header = ["family", "cases", *OUTCOME_KINDS]
    lines = [header] + [[str(row[key]) for key in header] for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(line, widths))) for line in lines)


def warm_imports() -> None:
    """Import what the cases' children would otherwise each import again (the commands' modules)."""
    for name in WARM_COMMANDS:
        resolve_command(name)


def run_family(module: ModuleType, family: str, rng: np.random.Generator, count: int, timeout_s: float,
               progress: bool) -> list[tuple[FuzzCase, Outcome]]:
    """Generate ``count`` cases of one family and run each in its own child."""
    cases = module.cases(rng, count)
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"fuzz family {family} generated duplicate case names")
    results = []
    for case in tqdm(cases, desc=f"fuzz {family}", disable=None if progress else True, leave=False):
        results.append((case, run_case(case, timeout_s)))
    return results


def run_lava_faults(count: int, progress: bool) -> dict[str, Any] | None:
    """The Lava fault injection (``fuzz_lava.run_faults``), or None for ``count == 0``."""
    if count == 0:
        return None
    return importlib.import_module(LAVA_FAULTS_MODULE).run_faults(count, progress)


def command_line(config: FuzzBenchConfig) -> str:
    return (f"bso-deploy bench fuzz --cases {config.cases} --seed {config.seed} --timeout {config.timeout_s:g} "
            f"--lava-faults {config.lava_faults} --out {config.out}")


def run_fuzz_bench(config: FuzzBenchConfig, progress: bool = True) -> dict[str, Any]:
    """Run every family and the Lava faults, print the table, write ``config.out``; returns the report."""
    start = time.perf_counter()
    modules = [load_family(name) for name in config.families]
    warm_imports()
    rows, failures = [], []
    for index, (module_name, module, count) in enumerate(
            zip(config.families, modules, split_cases(config.cases, len(modules)))):
        family = family_name(module_name)
        results = run_family(module, family, np.random.default_rng([config.seed, index]), count, config.timeout_s,
                             progress)
        rows.append(counts_row(family, [outcome for _, outcome in results]))
        failures += [{"family": case.family, "name": case.name, "kind": outcome.kind, "detail": outcome.detail}
                     for case, outcome in results if outcome.kind in FAILURE_KINDS]
    totals = {"cases": sum(row["cases"] for row in rows)}
    totals.update({kind: sum(row[kind] for row in rows) for kind in OUTCOME_KINDS})
    lava_faults = run_lava_faults(config.lava_faults, progress)
    report = {"totals": totals, "families": rows, "failures": failures, "lava_faults": lava_faults,
              "seed": config.seed, "timeout_s": config.timeout_s, "command": command_line(config),
              "seconds": round(time.perf_counter() - start, 1)}
    print(format_table([*rows, {"family": "total", **totals}]))
    for failure in failures:
        print(f"  {failure['kind']}: {failure['family']}/{failure['name']}: {failure['detail']}")
    if lava_faults is not None:
        print(f"lava faults: {lava_faults['faults']} injected, {lava_faults['leaked_processes']} leaked processes")
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config.out, report)
    print(f"wrote {config.out}")
    return report


def run_from_args(args) -> int:
    config = FuzzBenchConfig(cases=args.cases, seed=args.seed, timeout_s=args.timeout, lava_faults=args.lava_faults,
                             out=args.out)
    run_fuzz_bench(config, progress=not args.no_progress)
    return 0
