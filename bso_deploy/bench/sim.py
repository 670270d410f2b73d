"""``bso-deploy bench sim``: samples per second of the fixed-point backends on the digits network.

Two 64-256-256-10 networks, both fed the digits test images (quantized with ``quantize_inputs``, repeated
for ``time_steps`` steps, then ``fx_net.latency`` zero steps, docs/fixed-point.md §5.2):

- ``bso`` (the network people deploy): a T-BSO model trained briefly on digits (``epochs``, seeded; binary
  hidden layer, BatchNorm), exported to NIR and compiled in profile ``bso`` (per-neuron thresholds and biases,
  subtractive reset). The simulator and torch reference rows and the dense floor use it.
- ``loihi``: Lava's built-in ``LIF``/``Dense`` cannot express profile ``bso`` (§6.1), so the Lava rows run a
  seeded full-precision MLP of the same sizes with zero reset (hidden weights scaled by ``weight_gain`` so
  the hidden neurons spike), compiled in profile ``loihi``; the simulator also runs it at ``batch``, so one
  ratio compares the simulator and Lava on the same network.

Every record says which network and profile it ran. Before timing, the simulator and the torch reference are
checked to give identical spikes and outputs on the bso network, and simulator, torch reference and Lava
(streamed and fresh) on the loihi network. The simulator is timed as a prepared ``Simulator`` (``batched``,
like the prepared ``TorchReference``) and as plain ``simulate`` calls (``one_shot``).

The dense floor is the multiply-adds of one sample of the bso network (every connection of every layer at
every step, latency steps included) over this machine's measured float32 matmul rate (the faster of torch
and NumPy on a 1024 x 1024 product, at ``threads`` threads). In-process rows and the matmul rate are the
fastest of ``repeats`` calls; Lava rows time one pass over their samples. Records (``bench/sim.json``):
backend, mode, batch, samples_per_second, us_per_sample, time_steps, steps (with the latency), network,
profile (processes for Lava rows, dtype for float rows); ``bench/sim_summary.json``: the floor, the target
ratios, spike rates, accuracy, the conv ratios."""

from __future__ import annotations

import functools
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bso_deploy.export.nir import NIRExportWarning, to_nir
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.network import append_zero_steps
from bso_deploy.hardware.quantize import quantize_inputs
from bso_deploy.hardware.simulator import Simulator, simulate, simulate_stepwise
from bso_deploy.hardware.torch_reference import TorchReference
from bso_deploy.parity_data import dataset_samples

from ..config import TrainConfig
from ..io import atomic_write_json
from ..models import build_mlp
from ..neuron import LIFParameters
from ..plots import pyplot, save_figure
from ..run import TrainingRun
from .sim_conv import CONV_NETWORK, measure_conv, summarize_conv

SIZES = (64, 256, 256, 10)
STREAMED_TARGET = 300.0  # sim@batch vs Lava streamed (issue 5, ## Speed)
FLOOR_TARGET = 3.0  # sim@batch within 3x of the dense floor
CONV_REPEATS = 3  # timed calls of each conv row at most: a conv call takes seconds, not milliseconds
STEP_LOOP_TARGET = 1.5  # the prepared fused simulator at least 1.5x faster than the plain step loop at the batch


@dataclass(frozen=True)
class SimBenchConfig:
    time_steps: int = 8
    batch: int = 256
    repeats: int = 9
    lava_streamed_samples: int = 20
    lava_per_sample_runs: int = 3
    lava_copies: int = 16  # a second row of our Lava processes running this many network copies side by side
    weight_gain: float = 4.0
    epochs: int = 3
    hidden: tuple[int, ...] = SIZES[1:-1]
    seed: int = 0
    out_dir: str = "bench"
    threads: int = 1
    conv_samples: int = 256  # images of the conv rows (bench/sim_conv.py); 0: none

    def __post_init__(self) -> None:
        for name in ("time_steps", "batch", "repeats", "lava_streamed_samples", "lava_per_sample_runs", "threads",
                     "epochs", "lava_copies"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.conv_samples, bool) or not isinstance(self.conv_samples, int) or self.conv_samples < 0:
            raise ValueError(f"conv_samples must be an integer >= 0 (0: no conv rows), got {self.conv_samples!r}")
        if not self.weight_gain > 0:
            raise ValueError(f"weight_gain must be > 0, got {self.weight_gain!r}")
        if not self.hidden or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.hidden):
            raise ValueError(f"hidden must be layer widths >= 1, e.g. (256, 256), got {self.hidden!r}")

    @property
    def bso_network(self) -> str:
        """Name of the trained network in the records, e.g. digits-tbso-64-256-256-10."""
        return "-".join(["digits-tbso", *map(str, (SIZES[0], *self.hidden, SIZES[-1]))])

    @property
    def loihi_network(self) -> str:
        return "-".join(["mlp", *map(str, (SIZES[0], *self.hidden, SIZES[-1])), "untrained"])


def digits_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images (count, 64) float32 in [0, 1], labels): the digits test set, repeated to ``count`` samples."""
    images, labels = dataset_samples("digits", 10**6, seed=seed)
    index = np.arange(count) % len(images)
    return images[index], labels[index]


def build_bso_network(config: SimBenchConfig):
    """The digits network as deployed: T-BSO, ``config.epochs`` epochs, seeded, compiled in profile bso."""
    train = TrainConfig(dataset="digits", method="tbso", time_steps=4, epochs=config.epochs, seed=config.seed,
                        hidden=tuple(config.hidden))
    with tempfile.TemporaryDirectory() as directory:
        run = TrainingRun.create(train, directory)
        run.fit(progress=False, plot=False)
    with warnings.catch_warnings():  # the subtractive reset travels in NIR metadata (docs/nir.md), as intended
        warnings.simplefilter("ignore", NIRExportWarning)
        graph = to_nir(run.model.eval())
    return compile_nir(graph, profile="bso", time_steps=config.time_steps)


def build_loihi_network(config: SimBenchConfig):
    """A seeded full-precision MLP (zero reset) compiled in profile loihi, for Lava's built-in processes."""
    sizes = (SIZES[0], *config.hidden, SIZES[-1])
    model = build_mlp(sizes, binary="none", lif=LIFParameters(reset="zero"), seed=config.seed)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # untrained weights barely spike; a gain makes the hidden layers active
        for linear in linears[:-1]:
            linear.weight.mul_(config.weight_gain)
    return compile_nir(to_nir(model.eval()), profile="loihi", time_steps=config.time_steps)


def make_inputs(fx_net, images: np.ndarray, time_steps: int) -> np.ndarray:
    """(time_steps + latency, batch, 64) integer inputs: each image repeated, then zero steps."""
    quantized = quantize_inputs(fx_net, images)
    return append_zero_steps(np.broadcast_to(quantized, (time_steps, *quantized.shape)).copy(), fx_net.latency)


def _best_seconds(function: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up: other processes on a shared machine only ever
    slow a call down, so the minimum is the most repeatable estimate (as ``timeit`` advises)."""
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_matmul_rate(size: int = 1024, repeats: int = 5) -> float:
    """Multiply-adds per second of a float32 (size x size) @ (size x size) product on this CPU: the faster of
    torch and NumPy, at the threads in effect."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    a_np, b_np = a.numpy(), b.numpy()
    seconds = min(_best_seconds(lambda: torch.mm(a, b), repeats), _best_seconds(lambda: a_np @ b_np, repeats))
    return size ** 3 / seconds


def macs_per_sample(fx_net, steps: int) -> int:
    """Multiply-adds of one sample over ``steps`` steps if every synapse were a dense float product."""
    total = 0
    for layer in fx_net.layers:
        per_output = layer.weight.size if layer.kind == "dense" else layer.weight.size * int(
            np.prod(layer.output_shape[1:]))
        total += per_output
    return total * steps


def assert_same_result(expected, actual, what: str, samples: int | None = None) -> None:
    """Spikes of every layer and the output equal (of the first ``samples`` batch elements of expected)."""
    cut = slice(None) if samples is None else slice(0, samples)
    for index, (ours, theirs) in enumerate(zip(expected.spikes, actual.spikes)):
        np.testing.assert_array_equal(theirs, ours[:, cut], err_msg=f"{what}: spikes of layer {index}")
    np.testing.assert_array_equal(actual.output, expected.output[:, cut], err_msg=f"{what}: output")


def check_sim_torch(fx_net, inputs: np.ndarray):
    """Simulator (fused and step loop) and torch reference agree; returns the simulator's result."""
    expected = simulate(fx_net, inputs)
    assert_same_result(expected, simulate_stepwise(fx_net, inputs), "simulate_stepwise != simulate")
    assert_same_result(expected, TorchReference(fx_net, device="cpu").run(inputs), "torch reference != simulator")
    return expected


def check_identical_spikes(fx_net, inputs: np.ndarray, lava_samples: int) -> None:
    """Simulator, torch reference and Lava (streamed and fresh) give identical spikes; AssertionError if not."""
    from bso_deploy.hardware.lava.builtin import LavaBuiltinRunner, run_lava_per_sample  # Lava: optional, slow

    expected = check_sim_torch(fx_net, inputs)
    with LavaBuiltinRunner(fx_net, inputs.shape[0]) as runner:
        assert_same_result(expected, runner.run(inputs[:, :lava_samples]), "Lava streamed != simulator", lava_samples)
    assert_same_result(expected, run_lava_per_sample(fx_net, inputs[:, :1]), "Lava per-sample != simulator", 1)


def time_deployed(deploy: Callable[[Any], AbstractContextManager], fx_net, inputs: np.ndarray,
                  expected) -> dict[str, float]:
    """Time our own Lava deployment streaming ``inputs`` (steps, batch, ...): ``with deploy(fx_net) as network:``
    one warm-up sample (Lava compiles the network on its first run), then ``network.run(inputs)``, checked
    against ``expected`` (the simulator's result on the same inputs).

    Returns ``seconds_per_sample``, ``seconds_per_step`` (per Lava time step of the stream) and
    ``compile_seconds`` (build + compile + runtime start, as the network reports it, else the warm-up run)."""
    with deploy(fx_net) as network:
        start = time.perf_counter()
        network.run(inputs[:, :1])
        warm_up = time.perf_counter() - start
        start = time.perf_counter()
        result = network.run(inputs)
        seconds = time.perf_counter() - start
        compile_seconds = float(getattr(network, "compile_seconds", warm_up) or warm_up)
    assert_same_result(expected, result, "Lava deployed != simulator", inputs.shape[1])
    return {"seconds_per_sample": seconds / inputs.shape[1], "seconds_per_step": seconds / (inputs.shape[1] *
            inputs.shape[0]), "compile_seconds": compile_seconds}


def _record(backend: str, mode: str, batch: int, seconds_per_sample: float, config: SimBenchConfig, fx_net,
            network: str, **extra: Any) -> dict:
    return {"backend": backend, "mode": mode, "batch": batch, "samples_per_second": 1.0 / seconds_per_sample,
            "us_per_sample": seconds_per_sample * 1e6, "time_steps": config.time_steps,
            "steps": config.time_steps + fx_net.latency, "network": network, "profile": fx_net.profile, **extra}


def run_sim_bench(config: SimBenchConfig, progress: bool = True,
                  lava_deploy: Callable[[Any], AbstractContextManager] | None = None) -> list[dict]:
    """Check parity, time every backend/mode, print the table and the targets, write sim.json and sim.png.

    ``lava_deploy``: optional ``deploy(fx_net)`` of our own Lava processes, timed streaming the bso network
    (:func:`time_deployed`)."""
    from threadpoolctl import threadpool_limits  # comes with scikit-learn (digits extra), which the data need too

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with threadpool_limits(limits=config.threads):  # NumPy's BLAS too: every row runs on `threads` cores
            records, summary = _measure(config, progress, lava_deploy)
    finally:
        torch.set_num_threads(previous_threads)
    out = Path(config.out_dir)
    summary.update(target_ratios(records, summary, config))
    atomic_write_json(out / "sim.json", records)
    atomic_write_json(out / "sim_summary.json", summary)
    plot_sim_bench(records, out / "sim.png", summary["floor_us"])
    print(format_sim_table(records))
    print(summarize_sim_targets(summary, config))
    return records


def _measure(config: SimBenchConfig, progress: bool, lava_deploy) -> tuple[list[dict], dict]:
    # Lava is optional and slow to import; the fork start method also wants it imported after training.
    from bso_deploy.hardware.lava.builtin import LavaBuiltinRunner, run_lava_per_sample

    bso_net = build_bso_network(config)  # training first: Lava is imported only afterwards (fork start method)
    loihi_net = build_loihi_network(config)
    count = max(config.batch, config.lava_streamed_samples, config.lava_per_sample_runs)
    images, labels = digits_images(count, config.seed)
    bso_inputs = make_inputs(bso_net, images, config.time_steps)
    loihi_inputs = make_inputs(loihi_net, images, config.time_steps)
    bso_result = check_sim_torch(bso_net, bso_inputs)
    check_identical_spikes(loihi_net, loihi_inputs, min(config.lava_streamed_samples, 4))
    simulators = {config.bso_network: Simulator(bso_net), config.loihi_network: Simulator(loihi_net)}
    reference = TorchReference(bso_net, device="cpu")
    bso, loihi, batch = (bso_net, config.bso_network), (loihi_net, config.loihi_network), config.batch
    cases = [("sim", "batched", 1, bso), ("sim", "batched", batch, bso), ("sim", "one_shot", batch, bso),
             ("torch", "batched", 1, bso), ("torch", "batched", batch, bso), ("sim", "batched", batch, loihi),
             ("lava", "streamed", config.lava_streamed_samples, loihi),
             ("lava", "per_sample", config.lava_per_sample_runs, loihi)]
    if lava_deploy is not None:
        cases.append(("lava", "streamed", config.batch, bso))  # one compiled network streams the whole batch
    records = []
    for backend, mode, size, (fx_net, network) in tqdm(cases, desc="bench sim", disable=None if progress else True):
        x = (bso_inputs if fx_net is bso_net else loihi_inputs)[:, :size]
        extra = {"processes": "built-in LIF + Dense"} if backend == "lava" and fx_net is loihi_net else {}
        if backend == "sim" and mode == "batched":
            seconds = _best_seconds(lambda x=x, runner=simulators[network]: runner.run(x), config.repeats)
        elif backend == "sim":
            seconds = _best_seconds(lambda x=x, fx_net=fx_net: simulate(fx_net, x), config.repeats)
        elif backend == "torch":
            seconds = _best_seconds(lambda x=x: reference.run(x), config.repeats)
        elif fx_net is bso_net:  # LAVA DEPLOYED ROW: our own Lava processes on the bso network (time_deployed)
            timing = time_deployed(lava_deploy, bso_net, x, bso_result)
            seconds = timing["seconds_per_sample"] * size
            extra = {"processes": "bso-deploy BinarySynapse + BsoNeuron",
                     "compile_seconds": timing["compile_seconds"], "us_per_step": timing["seconds_per_step"] * 1e6}
        elif mode == "streamed":
            with LavaBuiltinRunner(fx_net, x.shape[0]) as runner:
                runner.run_sample(x[:, 0])  # compiles and warms up
                start = time.perf_counter()
                runner.run(x)
                seconds = time.perf_counter() - start
        else:
            start = time.perf_counter()
            run_lava_per_sample(fx_net, x)
            seconds = time.perf_counter() - start
        records.append(_record(backend, mode, size, seconds / size, config, fx_net, network, **extra))
    if lava_deploy is not None and config.lava_copies > 1:  # P copies per Lava step: throughput, not latency
        x = bso_inputs[:, :config.batch]
        timing = time_deployed(functools.partial(lava_deploy, copies=config.lava_copies), bso_net, x, bso_result)
        records.append(_record("lava", "streamed", config.batch, timing["seconds_per_sample"], config, bso_net,
                               config.bso_network, processes="bso-deploy BinarySynapse + BsoNeuron",
                               compile_seconds=timing["compile_seconds"],
                               us_per_step=timing["seconds_per_step"] * 1e6, copies=config.lava_copies))
    macs = macs_per_sample(bso_net, bso_inputs.shape[0])
    rate = measure_matmul_rate(repeats=config.repeats)
    step_loop = _best_seconds(lambda x=bso_inputs[:, :batch]: simulate_stepwise(bso_net, x), config.repeats)
    prediction = bso_result.output[-1].argmax(axis=-1)
    summary = {"macs_per_sample": macs, "matmul_macs_per_second": rate, "floor_us": macs / rate * 1e6,
               "spike_rates": [float(s.mean()) for s in bso_result.spikes[:-1]], "samples": len(labels),
               "fixed_accuracy": float((prediction == labels).mean()), "step_loop_us": step_loop / batch * 1e6}
    if config.conv_samples:
        conv_records, conv_summary = measure_conv(config.time_steps, config.conv_samples, config.seed,
                                                  min(config.repeats, CONV_REPEATS), _best_seconds)
        records += conv_records
        summary.update(conv_summary)
    return records, summary


def format_sim_table(records: list[dict]) -> str:
    header = (f"{'backend':<7} {'mode':<11} {'batch':>6} {'samples/s':>12} {'us/sample':>12}  "
              f"{'network (profile)'}")
    lines = [header, "-" * (len(header) + 30)]
    for r in records:
        lines.append(f"{r['backend']:<7} {r['mode']:<11} {r['batch']:>6} {r['samples_per_second']:>12.1f} "
                     f"{r['us_per_sample']:>12.1f}  {r['network']} ({r['profile']})"
                     + (f", {r['processes']}" if "processes" in r else "")
                     + (f", {r['copies']} copies" if "copies" in r else "")
                     + (f", {r['dtype']}" if "dtype" in r else "")
                     + (f" (compile {r['compile_seconds']:.2f} s, {r['us_per_step']:.0f} us/step)"
                        if "compile_seconds" in r else ""))
    return "\n".join(lines)


def target_ratios(records: list[dict], summary: dict, config: SimBenchConfig) -> dict:
    """sim@batch (prepared Simulator) over the dense floor, and Lava streamed over sim@batch (on the bso
    network against Lava on the loihi one, and both on the loihi network)."""
    by = {(r["backend"], r["mode"], r["batch"], r["network"]): r["us_per_sample"] for r in records
          if r.get("copies", 1) == 1}
    sim = by[("sim", "batched", config.batch, config.bso_network)]
    lava = by[("lava", "streamed", config.lava_streamed_samples, config.loihi_network)]
    return {"sim_over_floor": sim / summary["floor_us"], "lava_streamed_over_sim": lava / sim,
            "lava_streamed_over_sim_same_network": lava / by[("sim", "batched", config.batch, config.loihi_network)],
            "floor_target": FLOOR_TARGET, "streamed_target": STREAMED_TARGET,
            "step_loop_over_sim": summary["step_loop_us"] / sim, "step_loop_target": STEP_LOOP_TARGET,
            **({"lava_deployed_over_sim": deployed / sim} if (deployed := by.get(
                ("lava", "streamed", config.batch, config.bso_network))) is not None else {}),
            **{f"lava_deployed_{r['copies']}_copies_over_sim": r["us_per_sample"] / sim for r in records
               if r.get("copies", 1) > 1}}


def summarize_sim_targets(summary: dict, config: SimBenchConfig) -> str:
    """The issue's targets as ratios from this run; a miss is printed as a miss."""
    gap, speedup = summary["sim_over_floor"], summary["lava_streamed_over_sim"]
    rates = ", ".join(f"{rate:.3f}" for rate in summary["spike_rates"])
    lines = [f"bso network: spike rates of the hidden layers {rates}; fixed-point accuracy "
             f"{summary['fixed_accuracy']:.3f} on {summary['samples']} test samples",
             f"dense floor: {summary['macs_per_sample']} multiply-adds per sample / measured float32 matmul rate "
             f"{summary['matmul_macs_per_second'] / 1e9:.1f} G/s = {summary['floor_us']:.2f} us",
             f"sim@{config.batch} vs dense floor: {gap:.2f}x (target <= {FLOOR_TARGET:.0f}x) "
             f"{'met' if gap <= FLOOR_TARGET else 'MISSED'}",
             f"sim@{config.batch} (bso network) vs Lava streamed (loihi network): {speedup:.0f}x "
             f"(target >= {STREAMED_TARGET:.0f}x) {'met' if speedup >= STREAMED_TARGET else 'MISSED'}; "
             f"both on the loihi network: {summary['lava_streamed_over_sim_same_network']:.0f}x",
             f"sim@{config.batch} vs the plain step loop (simulate_stepwise): {summary['step_loop_over_sim']:.1f}x "
             f"faster (target >= {STEP_LOOP_TARGET}x) "
             f"{'met' if summary['step_loop_over_sim'] >= STEP_LOOP_TARGET else 'MISSED'}"]
    if "conv_network" in summary:
        lines.append(summarize_conv(summary, config.time_steps))
    if "lava_deployed_over_sim" in summary:
        deployed = summary["lava_deployed_over_sim"]
        lines.append(f"sim@{config.batch} vs our Lava processes streaming the same bso network: {deployed:.0f}x "
                     f"(target >= {STREAMED_TARGET:.0f}x) {'met' if deployed >= STREAMED_TARGET else 'MISSED'}")
    for key, ratio in summary.items():
        if key.startswith("lava_deployed_") and key.endswith("_copies_over_sim"):
            copies = key.removeprefix("lava_deployed_").removesuffix("_copies_over_sim")
            lines.append(f"sim@{config.batch} vs our Lava processes running {copies} copies of the network per Lava "
                         f"step (throughput): {ratio:.0f}x")
    return "\n".join(lines)


def plot_sim_bench(records: list[dict], path: Path, floor_us: float) -> None:
    plt = pyplot()
    labels = [f"{r['backend']}\n{r['mode']}\nbatch {r['batch']}\n{r.get('dtype', r['profile'])}" for r in records]
    colors = ["tab:green" if r["network"] == CONV_NETWORK else "tab:blue" if r["profile"] == "bso" else "tab:orange"
              for r in records]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.bar(labels, [r["us_per_sample"] for r in records], color=colors)
    ax.axhline(floor_us, color="tab:red", linestyle="--", label=f"dense floor (bso) {floor_us:.1f} us")
    ax.set_yscale("log")
    names = {r["profile"]: r["network"] for r in records if r["network"] != CONV_NETWORK}
    ax.set(ylabel="us per sample", title=f"digits, T = {records[0]['time_steps']}: blue {names.get('bso')} (bso), "
           f"orange {names.get('loihi')} (loihi); green {CONV_NETWORK} (bso, float)")
    ax.title.set_fontsize(9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend()
    save_figure(fig, path)
