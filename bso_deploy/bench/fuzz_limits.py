"""Fuzz family ``limits``: bounded work. Time steps, samples and layer sizes past the memory budget
(``bso_deploy.limits``: ``BSO_DEPLOY_MEMORY_LIMIT``, 8 GiB by default) must be refused with a
ResourceLimitError naming the size before anything is allocated; work just under the budget must run and
give the same result as without a budget.

Every case runs under a budget of 1 GiB (:data:`CASE_MEMORY_LIMIT`, set in the forked child's environment),
below the address space the harness leaves a case. The arrays of the API cases are broadcast views
(``numpy.broadcast_to``): 10^9 time steps of a network with 16 inputs cost no memory until something copies
them, so a refusal is the only outcome that neither crashes the child nor takes minutes. The command-line
cases give ``--time-steps`` of up to 10^12, or set a budget of a few KB and pass inputs of a few KB. The
training cases build a run (``TrainingRun.create``, ``train``) whose hidden layer has up to 2^36 neurons, and
malformed budgets (``lots``, ``-5``) are refused. Accept cases run the API a little under a tight budget and
compare the result with the unlimited run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..data import load_dataset
from ..hardware.compiler import compile_nir
from ..hardware.input_quantization import QUANTIZE_COPIES, quantize_inputs
from ..hardware.network import FixedPointNetwork
from ..hardware.parity import check_parity
from ..hardware.simulator import simulate
from ..hardware.torch_reference import TorchReference
from ..limits import MEMORY_LIMIT_VARIABLE, simulation_bytes
from ..run import TrainingRun
from .fuzz_cases import FuzzCase, run_cli
from .fuzz_inputs import INPUTS, graph_bytes, write_graph

__all__ = ["HUGE_STEPS", "OPERATIONS", "cases"]

FAMILY = "limits"
HUGE_STEPS = (10**7, 10**9, 10**12)
HUGE_SAMPLES = (10**7, 10**9)
HUGE_HIDDEN = (1 << 28, 1 << 32, 1 << 36)
BAD_BUDGETS = ("lots", "-5", "0", "1e400", "12X")
ACCEPT_SHARE = 0.2
# The budget every case runs under unless it sets its own: below the address-space headroom that run_case
# gives a child (4 GiB), as a user sets the budget below what their machine has free.
CASE_MEMORY_LIMIT = "1G"
GRAPH_STEPS = 4


def _network(work: Path, seed: int) -> FixedPointNetwork:
    return compile_nir(write_graph(work, seed), time_steps=GRAPH_STEPS)


def _view(steps: int, samples: int, value: float | int, dtype: type) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=dtype), (steps, samples, INPUTS))


# Operations on (fx_net or graph path, steps, samples): the API with broadcast views. Each returns its result.
def _simulate(work: Path, seed: int, steps: int, samples: int) -> object:
    return simulate(_network(work, seed), _view(steps, samples, 3, np.int64))


def _torch_reference(work: Path, seed: int, steps: int, samples: int) -> object:
    return TorchReference(_network(work, seed), device="cpu").run(_view(steps, samples, 3, np.int64))


def _quantize(work: Path, seed: int, steps: int, samples: int) -> object:
    return quantize_inputs(_network(work, seed), _view(steps, samples, 0.25, np.float64))


def _parity_repeat(work: Path, seed: int, steps: int, samples: int) -> object:
    x = np.broadcast_to(np.float64(0.25), (samples, INPUTS))
    return check_parity(write_graph(work, seed), backends=("sim",), inputs=x, time_steps=steps)


def _cli_run(backend: str) -> Callable[[Path, int, int, int], object]:
    def run(work: Path, seed: int, steps: int, samples: int) -> object:
        write_graph(work, seed)
        np.save("x.npy", np.random.default_rng(seed).random((min(samples, 64), INPUTS)))
        return run_cli(["run", "model.nir", "--backend", backend, "--inputs", "x.npy", "--time-steps", str(steps),
                        "--out", "out.npz"])
    return run


OPERATIONS: dict[str, Callable[[Path, int, int, int], object]] = {
    "simulate": _simulate, "torch_reference": _torch_reference, "quantize_inputs": _quantize,
    "check_parity": _parity_repeat, "cli-run-sim": _cli_run("sim"), "cli-run-float": _cli_run("float"),
    "cli-run-torch": _cli_run("torch"),
}
CLI_OPERATIONS = ("cli-run-sim", "cli-run-float", "cli-run-torch")


def _huge_case(operation: str, seed: int, steps: int, samples: int) -> FuzzCase:
    call = OPERATIONS[operation]
    samples = min(samples, 64) if operation in CLI_OPERATIONS else samples  # a CLI file holds real samples

    def action(work: Path) -> object:
        os.environ[MEMORY_LIMIT_VARIABLE] = CASE_MEMORY_LIMIT
        return call(work, seed, steps, samples)
    return FuzzCase(FAMILY, f"{operation}:steps={steps},samples={samples}/{seed}", action, "error")


def _budget_case(operation: str, seed: int, budget: int, steps: int) -> FuzzCase:
    """Work of ``steps`` x 8 samples under a budget of ``budget`` bytes set in the child's environment."""
    def action(work: Path) -> object:
        os.environ[MEMORY_LIMIT_VARIABLE] = str(budget)
        return OPERATIONS[operation](work, seed, steps, 8)
    return FuzzCase(FAMILY, f"{operation}:budget={budget},steps={steps}/{seed}", action, "error")


def _bad_budget_case(operation: str, seed: int, text: str) -> FuzzCase:
    def action(work: Path) -> object:
        os.environ[MEMORY_LIMIT_VARIABLE] = text
        return OPERATIONS[operation](work, seed, 64, 8)
    return FuzzCase(FAMILY, f"{operation}:{MEMORY_LIMIT_VARIABLE}={text}/{seed}", action, "error")


def _training_case(seed: int, hidden: int, cli: bool) -> FuzzCase:
    def action(work: Path) -> object:
        os.environ[MEMORY_LIMIT_VARIABLE] = CASE_MEMORY_LIMIT
        if cli:
            return run_cli(["train", "--dataset", "digits", "--hidden", f"{hidden},8", "--epochs", "1", "--out",
                            str(work / "run"), "--no-progress", "--fixed-point-samples", "0"])
        return TrainingRun.create(TrainConfig(hidden=(hidden, 8), epochs=1, fixed_point_samples=0), work / "run")
    return FuzzCase(FAMILY, f"{'cli-train' if cli else 'TrainingRun.create'}:hidden={hidden}/{seed}", action, "error")


def _accept_case(operation: str, seed: int, steps: int) -> FuzzCase:
    """``steps`` x 3 samples under a budget just big enough for the simulation's arrays: the result equals the
    unlimited run's."""
    def action(work: Path) -> object:
        fx_net = _network(work, seed)
        need = simulation_bytes(steps, 3, INPUTS, [layer.num_neurons for layer in fx_net.layers], record=False)
        os.environ[MEMORY_LIMIT_VARIABLE] = str(max(need, steps * 3 * INPUTS * 8 * QUANTIZE_COPIES))
        return OPERATIONS[operation](work, seed, steps, 3)

    def verify(result: object, work: Path) -> bool:
        del os.environ[MEMORY_LIMIT_VARIABLE]
        fx_net = _network(work, seed)
        if operation == "quantize_inputs":
            return np.array_equal(result, quantize_inputs(fx_net, np.full((steps, 3, INPUTS), 0.25)))
        expected = simulate(fx_net, np.full((steps, 3, INPUTS), 3, dtype=np.int64))
        return np.array_equal(result.output, expected.output) and all(
            np.array_equal(a, b) for a, b in zip(result.spikes, expected.spikes, strict=True))
    return FuzzCase(FAMILY, f"accept-{operation}:steps={steps}/{seed}", action, "accept", verify)


def cases(rng: np.random.Generator, count: int) -> list[FuzzCase]:
    """``count`` cases drawn from ``rng`` (deterministic): 20% accept under a tight budget, the rest huge steps,
    samples, budgets, malformed budgets and huge hidden layers."""
    for variant in range(4):
        graph_bytes(variant)
    load_dataset("digits")  # scikit-learn loads once, in the parent of the forked cases
    operations = sorted(OPERATIONS)
    out: list[FuzzCase] = []
    for _ in range(count):
        seed, draw = int(rng.integers(1 << 30)), rng.random()
        operation = str(rng.choice(operations))
        if draw < ACCEPT_SHARE:
            api = str(rng.choice(["simulate", "torch_reference", "quantize_inputs"]))
            out.append(_accept_case(api, seed, int(rng.integers(1, 400))))
        elif draw < 0.5:
            out.append(_huge_case(operation, seed, int(rng.choice(HUGE_STEPS)), 1))
        elif draw < 0.62:
            api = str(rng.choice(["simulate", "torch_reference", "quantize_inputs", "check_parity"]))
            out.append(_huge_case(api, seed, GRAPH_STEPS, int(rng.choice(HUGE_SAMPLES))))
        elif draw < 0.8:
            out.append(_budget_case(operation, seed, int(rng.integers(1 << 10, 1 << 16)), int(rng.integers(500, 5000))))
        elif draw < 0.9:
            out.append(_bad_budget_case(operation, seed, str(rng.choice(BAD_BUDGETS))))
        else:
            out.append(_training_case(seed, int(rng.choice(HUGE_HIDDEN)), bool(rng.random() < 0.3)))
    return out
