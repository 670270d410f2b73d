"""``bso-deploy bench sim``: samples per second of the fixed-point backends on the digits network.

One seeded full-precision 64-256-256-10 MLP (zero reset; hidden weights scaled by ``weight_gain`` so that
the hidden neurons spike) is exported to NIR and compiled once for profile ``loihi``, so that the SAME
FixedPointNetwork runs on the NumPy simulator, the torch reference (batch 1 and ``batch``) and Lava's
built-in Dense + LIF (one compiled network streaming samples, and a fresh build per sample). Inputs are
digits test images quantized with ``quantize_inputs``, repeated for ``time_steps`` steps, plus
``fx_net.latency`` zero steps. Before timing, all backends are checked to give identical spikes.

The dense floor is the multiply-adds of one sample (sum over layers of n_in * n_out, times the steps) over
this machine's measured float32 matmul rate. Records (``bench/sim.json``): backend, mode, batch,
samples_per_second, us_per_sample, time_steps, network, profile.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write_json
from ..plots import save_figure

SIZES = (64, 256, 256, 10)
NETWORK = "mlp-64-256-256-10"
PROFILE = "loihi"
STREAMED_TARGET = 300.0  # sim@batch vs Lava streamed (issue 5, ## Speed)
FLOOR_TARGET = 3.0  # sim@batch within 3x of the dense floor


@dataclass(frozen=True)
class SimBenchConfig:
    time_steps: int = 8
    batch: int = 256
    repeats: int = 5
    lava_streamed_samples: int = 20
    lava_per_sample_runs: int = 3
    weight_gain: float = 4.0
    seed: int = 0
    out_dir: str = "bench"
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("time_steps", "batch", "repeats", "lava_streamed_samples", "lava_per_sample_runs", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.weight_gain > 0:
            raise ValueError(f"weight_gain must be > 0, got {self.weight_gain!r}")


def build_bench_network(config: SimBenchConfig):
    """The seeded digits MLP compiled for profile loihi: (fx_net, float images of the digits test set)."""
    from bso_deploy.export.nir import to_nir
    from bso_deploy.hardware.compiler import compile_nir

    from ..data import load_dataset
    from ..models import build_mlp
    from ..neuron import LIFParameters

    model = build_mlp(SIZES, binary="none", lif=LIFParameters(reset="zero"), seed=config.seed)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # untrained weights barely spike; a gain makes the hidden layers active
        for linear in linears[:-1]:
            linear.weight.mul_(config.weight_gain)
    model.eval()
    fx_net = compile_nir(to_nir(model), profile=PROFILE, time_steps=config.time_steps)
    split = load_dataset("digits", seed=config.seed)
    images = torch.stack([split.test[i][0] for i in range(len(split.test))]).numpy()
    return fx_net, images


def make_inputs(fx_net, images: np.ndarray, time_steps: int) -> np.ndarray:
    """(time_steps + latency, batch, 64) integer inputs: each image repeated, then zero steps."""
    from bso_deploy.hardware.network import append_zero_steps
    from bso_deploy.hardware.quantize import quantize_inputs

    quantized = quantize_inputs(fx_net, images)
    return append_zero_steps(np.broadcast_to(quantized, (time_steps, *quantized.shape)).copy(), fx_net.latency)


def _median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_matmul_flops(size: int = 1024, repeats: int = 5) -> float:
    """Multiply-adds per second of a float32 (size x size) @ (size x size) torch matmul on this CPU."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    seconds = _median_seconds(lambda: torch.mm(a, b), repeats)
    return size ** 3 / seconds


def check_identical_spikes(fx_net, inputs: np.ndarray, lava_samples: int) -> None:
    """Simulator, torch reference and Lava (streamed and fresh) give identical spikes; AssertionError if not."""
    from bso_deploy.hardware.lava.builtin import LavaBuiltinRunner, run_lava_per_sample
    from bso_deploy.hardware.simulator import simulate
    from bso_deploy.hardware.torch_reference import TorchReference

    expected = simulate(fx_net, inputs)
    reference = TorchReference(fx_net, device="cpu").run(inputs)
    for ours, theirs in zip(expected.spikes, reference.spikes):
        np.testing.assert_array_equal(theirs, ours, err_msg="torch reference != simulator")
    np.testing.assert_array_equal(reference.output, expected.output)
    with LavaBuiltinRunner(fx_net, inputs.shape[0]) as runner:
        streamed = runner.run(inputs[:, :lava_samples])
    fresh = run_lava_per_sample(fx_net, inputs[:, :1])
    for index in range(len(fx_net.layers)):
        np.testing.assert_array_equal(streamed.spikes[index], expected.spikes[index][:, :lava_samples],
                                      err_msg="Lava streamed != simulator")
        np.testing.assert_array_equal(fresh.spikes[index], expected.spikes[index][:, :1],
                                      err_msg="Lava per-sample != simulator")
    np.testing.assert_array_equal(streamed.output, expected.output[:, :lava_samples])


def _record(backend: str, mode: str, batch: int, seconds_per_sample: float, config: SimBenchConfig) -> dict:
    return {"backend": backend, "mode": mode, "batch": batch, "samples_per_second": 1.0 / seconds_per_sample,
            "us_per_sample": seconds_per_sample * 1e6, "time_steps": config.time_steps, "network": NETWORK,
            "profile": PROFILE}


def run_sim_bench(config: SimBenchConfig, progress: bool = True) -> list[dict]:
    """Check parity, time every backend/mode, print the table and the targets, write sim.json and sim.png."""
    from tqdm.auto import tqdm

    from bso_deploy.hardware.lava.builtin import LavaBuiltinRunner, run_lava_per_sample
    from bso_deploy.hardware.simulator import simulate
    from bso_deploy.hardware.torch_reference import TorchReference

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        fx_net, images = build_bench_network(config)
        count = max(config.batch, config.lava_streamed_samples, config.lava_per_sample_runs)
        inputs = make_inputs(fx_net, np.resize(images, (count, images.shape[1])), config.time_steps)
        check_identical_spikes(fx_net, inputs, min(config.lava_streamed_samples, 4))
        reference = TorchReference(fx_net, device="cpu")
        cases = [("sim", "batched", 1), ("sim", "batched", config.batch), ("torch", "batched", 1),
                 ("torch", "batched", config.batch), ("lava", "streamed", config.lava_streamed_samples),
                 ("lava", "per_sample", config.lava_per_sample_runs)]
        records = []
        for backend, mode, batch in tqdm(cases, desc="bench sim", disable=None if progress else True):
            x = inputs[:, :batch]
            if backend == "sim":
                seconds = _median_seconds(lambda x=x: simulate(fx_net, x), config.repeats)
            elif backend == "torch":
                seconds = _median_seconds(lambda x=x: reference.run(x), config.repeats)
            elif mode == "streamed":
                with LavaBuiltinRunner(fx_net, inputs.shape[0]) as runner:
                    runner.run_sample(x[:, 0])  # compiles and warms up
                    start = time.perf_counter()
                    runner.run(x)
                    seconds = time.perf_counter() - start
            else:
                start = time.perf_counter()
                run_lava_per_sample(fx_net, x)
                seconds = time.perf_counter() - start
            records.append(_record(backend, mode, batch, seconds / batch, config))
        macs_per_sample = sum(layer.weight.size for layer in fx_net.layers) * inputs.shape[0]
        floor_seconds = macs_per_sample / measure_matmul_flops()
    finally:
        torch.set_num_threads(previous_threads)
    out = Path(config.out_dir)
    atomic_write_json(out / "sim.json", records)
    plot_sim_bench(records, out / "sim.png", floor_seconds * 1e6)
    print(format_sim_table(records))
    print(summarize_sim_targets(records, floor_seconds * 1e6, macs_per_sample, config))
    return records


def format_sim_table(records: list[dict]) -> str:
    header = f"{'backend':<7} {'mode':<11} {'batch':>6} {'samples/s':>12} {'us/sample':>12}"
    lines = [header, "-" * len(header)]
    for r in records:
        lines.append(f"{r['backend']:<7} {r['mode']:<11} {r['batch']:>6} {r['samples_per_second']:>12.1f} "
                     f"{r['us_per_sample']:>12.1f}")
    return "\n".join(lines)


def summarize_sim_targets(records: list[dict], floor_us: float, macs: int, config: SimBenchConfig) -> str:
    """The issue's targets as ratios from this run; a miss is printed as a miss."""
    by = {(r["backend"], r["mode"], r["batch"]): r["us_per_sample"] for r in records}
    sim = by[("sim", "batched", config.batch)]
    lava = by[("lava", "streamed", config.lava_streamed_samples)]
    speedup, gap = lava / sim, sim / floor_us
    lines = [f"dense floor: {macs} multiply-adds per sample / measured float32 matmul rate = {floor_us:.2f} us",
             f"sim@{config.batch} vs Lava streamed: {speedup:.1f}x (target >= {STREAMED_TARGET:.0f}x) "
             f"{'met' if speedup >= STREAMED_TARGET else 'MISSED'}",
             f"sim@{config.batch} vs dense floor: {gap:.1f}x slower (target <= {FLOOR_TARGET:.0f}x) "
             f"{'met' if gap <= FLOOR_TARGET else 'MISSED'}"]
    return "\n".join(lines)


def plot_sim_bench(records: list[dict], path: Path, floor_us: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backend']}\n{r['mode']}\nbatch {r['batch']}" for r in records]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(labels, [r["us_per_sample"] for r in records], color="tab:blue")
    ax.axhline(floor_us, color="tab:red", linestyle="--", label=f"dense floor {floor_us:.1f} us")
    ax.set_yscale("log")
    ax.set(ylabel="us per sample", title=f"{NETWORK}, profile {PROFILE}, T = {records[0]['time_steps']}")
    ax.legend()
    save_figure(fig, path)


