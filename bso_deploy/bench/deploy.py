"""``bso-deploy bench deploy``: how faithfully networks made by other tools deploy (issue 11's benchmark).

Each network of :mod:`.thirdparty` is trained by its own framework on digits (seeded, cached) and exported by
it. A NIR graph is compiled to profile ``bso`` once per scaling (``worst-case``, and ``calibrated`` on
``calibration_samples`` training inputs, docs/fixed-point.md §10.3) and run on the whole test split:

- float: our float backend on the graph (``hardware.backends.run_float``); fixed: the simulator (``sim``)
  on the quantized inputs followed by the latency's zero steps (§5.2);
- per spiking layer k, float step t against fixed step t + k + 1 (``parity.float_fixed_agreement``'s
  alignment): ``spike_ratio`` = fixed spikes / float spikes, ``spike_precision`` = spikes in both / fixed
  spikes, ``spike_recall`` = spikes in both / float spikes, ``spike_agreement`` (equal values, silent ones
  included);
- saturation: the simulator's counts (§5.6) summed over the test split, per layer;
- mismatches: positions where spikes, u or v differ, torch reference against the simulator on the whole
  split, Lava against the simulator on the first ``lava_samples`` samples (with their saturation counts).

A lava-dl netx file is imported with ``bso_deploy.export.netx.from_netx`` (no re-quantization) and run on
the simulator and the torch reference; lava-dl's own ``netx.hdf5.Network`` runs the first ``lava_samples``
samples back to back on Lava fixed_pt (:func:`.thirdparty.run_lavadl_netx`) against the simulator on the
same stream (``netx_mismatches``); float is lava-dl's own slayer forward pass. A network that fails to
compile or run keeps its row, with the error in ``error`` (``lava_error`` for Lava alone).

``bench/deploy.json``: ``rows`` (one per network x scaling), ``targets`` (the issue's), per row
``targets_met``, and ``seed``, ``command``, ``seconds``; ``bench/deploy.png``: spike ratio per layer.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_json
from ..plots import save_figure
from .thirdparty import NETWORKS, NetworkSizes, ThirdPartyNetwork, build_network

__all__ = ["SCALINGS", "TARGETS", "DeployBenchConfig", "add_deploy_arguments", "format_deploy_table",
           "run_deploy_bench", "run_from_args"]

SCALINGS = ("worst-case", "calibrated")
QUICK_TEST_SAMPLES = 60
TARGETS = {"spike_ratio": [0.9, 1.1], "accuracy_drop_max": 0.01, "prediction_agreement_min": 0.99,
           "mismatches": 0, "netx_mismatches": 0}


@dataclass(frozen=True)
class DeployBenchConfig:
    networks: tuple[str, ...] = field(default=NETWORKS)
    seed: int = 0
    lava_samples: int = 20
    calibration_samples: int = 64
    test_samples: int | None = None  # None: the whole test split (quick: QUICK_TEST_SAMPLES)
    chunk: int = 50  # samples per recorded run (bounds memory: u and v of every layer and step)
    quick: bool = False
    out_dir: str = "bench"
    cache_dir: str = "runs/bench-deploy-cache"
    threads: int = 1

    def __post_init__(self) -> None:
        networks = tuple(self.networks)
        if not networks or any(n not in NETWORKS for n in networks) or len(set(networks)) != len(networks):
            raise ValueError(f"networks must be distinct names among {', '.join(NETWORKS)}, got {self.networks!r}")
        object.__setattr__(self, "networks", networks)
        for name in ("lava_samples", "calibration_samples", "chunk", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "lava_samples" else 1):
                raise ValueError(f"{name} must be an integer >= {0 if name == 'lava_samples' else 1}, got {value!r}")
        if self.test_samples is not None and (isinstance(self.test_samples, bool) or self.test_samples < 1):
            raise ValueError(f"test_samples must be None or an integer >= 1, got {self.test_samples!r}")

    def samples_for(self, available: int) -> int:
        """Test samples evaluated: ``test_samples``, else all (``quick``: 60)."""
        wanted = self.test_samples if self.test_samples is not None else (QUICK_TEST_SAMPLES if self.quick else None)
        return available if wanted is None else min(wanted, available)

    @property
    def sizes(self) -> NetworkSizes:
        return NetworkSizes.quick() if self.quick else NetworkSizes()


# ---------------------------------------------------------------- comparisons

def count_mismatches(reference, other, samples: int | None = None) -> tuple[int, int]:
    """(positions where spikes, u or v differ, spike values compared) between two recorded SimulationResults
    (``other`` may hold only the first ``samples`` batch elements of ``reference``)."""
    cut = slice(None) if samples is None else slice(0, samples)
    mismatches = compared = 0
    for k in range(len(reference.spikes)):
        differ = (reference.spikes[k][:, cut] != other.spikes[k]) | (reference.u[k][:, cut] != other.u[k]) | \
            (reference.v[k][:, cut] != other.v[k])
        mismatches += int(differ.sum())
        compared += int(other.spikes[k].size)
    return mismatches, compared


def saturation_totals(result, names: list[str]) -> dict[str, dict[str, int]]:
    return {name: counts.totals() for name, counts in zip(names, result.saturation)}


def saturation_mismatches(reference, other, samples: int | None = None) -> int:
    """Neurons whose saturation counts (v, u, a) differ; 0 when ``other`` counts none (an empty tuple)."""
    cut = slice(None) if samples is None else slice(0, samples)
    if not other.saturation:
        return 0
    return sum(int(np.sum(np.asarray(ours)[cut] != np.asarray(theirs)))
               for mine, yours in zip(reference.saturation, other.saturation) for ours, theirs in zip(mine, yours))


class SpikeTally:
    """Per spiking layer: float spikes, fixed spikes, spikes in both, equal values, values compared."""

    def __init__(self) -> None:
        self.counts: dict[str, np.ndarray] = {}

    def add(self, name: str, float_spikes: np.ndarray, fixed_spikes: np.ndarray) -> None:
        f, x = float_spikes.astype(bool), fixed_spikes.astype(bool)
        counts = np.array([f.sum(), x.sum(), (f & x).sum(), (f == x).sum(), f.size], dtype=np.int64)
        self.counts[name] = self.counts.get(name, 0) + counts

    def stats(self) -> dict[str, dict[str, float | None]]:
        def ratio(a: int, b: int) -> float | None:
            return None if b == 0 else float(a / b)

        out: dict[str, dict[str, float | None]] = {"spike_ratio": {}, "spike_precision": {}, "spike_recall": {},
                                                   "spike_agreement": {}}
        for name, (floats, fixed, both, equal, total) in self.counts.items():
            out["spike_ratio"][name] = ratio(fixed, floats)
            out["spike_precision"][name] = ratio(both, fixed)
            out["spike_recall"][name] = ratio(both, floats)
            out["spike_agreement"][name] = ratio(equal, total)
        out["float_spikes"] = {name: int(c[0]) for name, c in self.counts.items()}
        out["fixed_spikes"] = {name: int(c[1]) for name, c in self.counts.items()}
        return out


def predictions_of(fx_net, result) -> np.ndarray:
    """Argmax of the readout's v at the last step, or of the summed spikes of a spiking last layer."""
    output = np.asarray(result.output)
    values = output.sum(axis=0) if fx_net.layers[-1].spiking else output[-1]
    return values.reshape(values.shape[0], -1).argmax(axis=1)


def targets_met(row: dict[str, Any]) -> dict[str, bool | None]:
    """Each of the issue's targets for one row: True, False, or None where the row has no figure for it."""
    low, high = TARGETS["spike_ratio"]
    ratios = [r for r in (row.get("spike_ratio") or {}).values() if r is not None]
    met: dict[str, bool | None] = {
        "spike_ratio": bool(ratios) and all(low <= r <= high for r in ratios) if ratios else None,
        "accuracy": None, "prediction_agreement": None,
        "mismatches": None if row.get("mismatches") is None else all(
            n == 0 for n in row["mismatches"].values() if n is not None)}
    if row.get("fixed_accuracy") is not None and row.get("float_accuracy") is not None:
        met["accuracy"] = row["float_accuracy"] - row["fixed_accuracy"] <= TARGETS["accuracy_drop_max"] + 1e-12
    if row.get("prediction_agreement") is not None:
        met["prediction_agreement"] = row["prediction_agreement"] >= TARGETS["prediction_agreement_min"]
    if "netx_mismatches" in row:
        met["netx_mismatches"] = None if row["netx_mismatches"] is None else row["netx_mismatches"] == 0
    return met


# ---------------------------------------------------------------- NIR networks

def _compile(net: ThirdPartyNetwork, scaling: str, config: DeployBenchConfig, steps: int):
    """Profile bso, ``scaling``; both scalings take the input range from the same training samples (event
    counts keep their integers, §10.1, §10.6), so they differ only in how the layer scales are chosen."""
    from bso_deploy.hardware.compiler import compile_nir

    calibration = net.train_inputs[:, :config.calibration_samples].astype(np.float64)
    return compile_nir(net.graph, profile="bso", dt=net.dt, time_steps=steps, scaling=scaling,
                       calibration=calibration)


def _nir_rows(net: ThirdPartyNetwork, config: DeployBenchConfig, tqdm) -> list[dict[str, Any]]:
    from bso_deploy.hardware.backends import run_float
    from bso_deploy.hardware.network import append_zero_steps
    from bso_deploy.hardware.quantize import quantize_inputs
    from bso_deploy.hardware.simulator import simulate
    from bso_deploy.hardware.torch_reference import TorchReference

    count = config.samples_for(net.test_labels.size)
    x, labels = net.test_inputs[:, :count], net.test_labels[:count]
    steps, count = int(x.shape[0]), int(x.shape[1])
    start = time.perf_counter()
    float_runs = [run_float(net.graph, "float", x[:, i:i + config.chunk].astype(np.float64), dt=net.dt, record=True)
                  for i in range(0, count, config.chunk)]
    float_seconds = time.perf_counter() - start
    float_pred = np.concatenate([run.predictions for run in float_runs])
    float_accuracy = float(np.mean(float_pred == labels))
    rows = []
    for scaling in SCALINGS:
        row = _base_row(net, scaling, steps, count)
        row.update(float_accuracy=float_accuracy, seconds={"float": float_seconds})
        rows.append(row)
        try:
            start = time.perf_counter()
            fx_net = _compile(net, scaling, config, steps)
            row["seconds"]["compile"] = time.perf_counter() - start
        except (ValueError, TypeError, NotImplementedError) as error:
            row["error"] = f"compile: {type(error).__name__}: {error}"
            row["targets_met"] = targets_met(row)
            continue
        names = [layer.name for layer in fx_net.layers]
        row.update(profile=fx_net.profile, input_scale=fx_net.input_scale, input_max=fx_net.input_max)
        row["layers"] = [{"name": q.get("layer"), "scale": q.get("scale"), "binding_bound": q.get("binding_bound")}
                         for q in fx_net.quantization]
        tally, predictions, sim_seconds, torch_seconds = SpikeTally(), [], 0.0, 0.0
        mismatches = compared = saturation_differ = clipped = 0
        saturation: dict[str, dict[str, int]] = {}
        reference = TorchReference(fx_net, device="cpu")
        first_result = first_inputs = None
        for index, float_run in zip(range(0, count, config.chunk), tqdm(float_runs, desc=f"{net.name} {scaling}",
                                                                        leave=False)):
            chunk = x[:, index:index + config.chunk].astype(np.float64)
            integers = quantize_inputs(fx_net, chunk)
            clipped += int(np.sum(integers != chunk * float(fx_net.quantization[0]["input_scale"])))
            integers = append_zero_steps(integers, fx_net.latency)
            start = time.perf_counter()
            result = simulate(fx_net, integers, record=True)
            sim_seconds += time.perf_counter() - start
            start = time.perf_counter()
            other = reference.run(integers, record=True)
            torch_seconds += time.perf_counter() - start
            chunk_mismatches, chunk_compared = count_mismatches(result, other)
            mismatches, compared = mismatches + chunk_mismatches, compared + chunk_compared
            saturation_differ += saturation_mismatches(result, other)
            for name, totals in saturation_totals(result, names).items():
                saturation[name] = {key: saturation.get(name, {}).get(key, 0) + value for key, value in totals.items()}
            for k, layer in enumerate(fx_net.layers):
                if layer.spiking and layer.name in float_run.layers:
                    tally.add(layer.name, float_run.layers[layer.name], result.spikes[k][k + 1:k + 1 + steps])
            predictions.append(predictions_of(fx_net, result))
            if first_result is None:
                first_result, first_inputs = result, integers
        fixed_pred = np.concatenate(predictions)
        row.update(tally.stats())
        row.update(fixed_accuracy=float(np.mean(fixed_pred == labels)),
                   prediction_agreement=float(np.mean(fixed_pred == float_pred)), saturation=saturation,
                   input_clipped_values=clipped, compared_spikes={"sim_torch": compared},
                   mismatches={"sim_torch": mismatches, "sim_lava": None},
                   saturation_mismatches={"sim_torch": saturation_differ, "sim_lava": None},
                   silent_layers=[name for name, n in row["fixed_spikes"].items() if n == 0])
        row["seconds"].update(sim=sim_seconds, torch=torch_seconds)
        lava = min(config.lava_samples, first_inputs.shape[1])
        if lava:
            _lava_check(row, fx_net, first_result, first_inputs[:, :lava])
        row["targets_met"] = targets_met(row)
    return rows


def _lava_check(row: dict[str, Any], fx_net, expected, integers: np.ndarray) -> None:
    from bso_deploy.hardware.backends import get_backend

    start = time.perf_counter()
    try:
        result = get_backend("lava").run(fx_net, integers, True)
    except Exception as error:  # any Lava failure is a result of the benchmark, not a crash
        row["lava_error"] = f"{type(error).__name__}: {error}".splitlines()[0][:400]
        return
    samples = integers.shape[1]
    row["mismatches"]["sim_lava"], row["compared_spikes"]["sim_lava"] = count_mismatches(expected, result, samples)
    row["saturation_mismatches"]["sim_lava"] = saturation_mismatches(expected, result, samples)
    row["lava_samples"] = samples
    row["seconds"]["lava"] = time.perf_counter() - start


def _base_row(net: ThirdPartyNetwork, scaling: str, steps: int, count: int) -> dict[str, Any]:
    return {"network": net.name, "framework": net.framework, "description": net.description, "kind": net.kind,
            "scaling": scaling, "profile": None, "dt": net.dt, "time_steps": steps, "samples": count,
            "framework_accuracy": net.framework_accuracy, "train_seconds": net.train_seconds, "cached": net.cached,
            "float_accuracy": None, "fixed_accuracy": None, "prediction_agreement": None, "spike_ratio": {},
            "spike_precision": {}, "spike_recall": {}, "spike_agreement": {}, "saturation": {}, "mismatches": None,
            "lava_samples": 0, "error": None}


# ---------------------------------------------------------------- netx networks

def _netx_row(net: ThirdPartyNetwork, config: DeployBenchConfig) -> dict[str, Any]:
    from bso_deploy.hardware.network import append_zero_steps
    from bso_deploy.hardware.simulator import simulate
    from bso_deploy.hardware.torch_reference import TorchReference

    count = config.samples_for(net.test_labels.size)
    x, labels = net.test_inputs[:, :count], net.test_labels[:count]
    framework_pred = np.asarray(net.framework_predictions)[:count]
    framework_spikes = np.asarray(net.framework_layer_spikes, dtype=np.int64)[:count].sum(axis=0)
    row = _base_row(net, "netx", int(x.shape[0]), int(x.shape[1]))
    row.update(float_accuracy=float(np.mean(framework_pred == labels)), seconds={}, netx_mismatches=None,
               float_is="lava-dl slayer forward pass")
    try:
        from bso_deploy.export.netx import from_netx

        start = time.perf_counter()
        fx_net = from_netx(net.netx_path)
        row["seconds"]["import"] = time.perf_counter() - start
    except (ImportError, ValueError, TypeError, KeyError, NotImplementedError) as error:
        row["error"] = f"from_netx: {type(error).__name__}: {error}"
        row["targets_met"] = targets_met(row)
        return row
    row["profile"] = fx_net.profile
    names = [layer.name for layer in fx_net.layers]
    integers = append_zero_steps(x.astype(np.int64), fx_net.latency)
    start = time.perf_counter()
    result = simulate(fx_net, integers, record=True)
    row["seconds"]["sim"] = time.perf_counter() - start
    start = time.perf_counter()
    other = TorchReference(fx_net, device="cpu").run(integers, record=True)
    row["seconds"]["torch"] = time.perf_counter() - start
    mismatches, compared = count_mismatches(result, other)
    fixed_pred = predictions_of(fx_net, result)
    spikes = [int(s.sum()) for s in result.spikes]
    reference_spikes = [int(n) for n in framework_spikes]
    ratios = {name: (None if not theirs else ours / theirs) for name, ours, theirs in
              zip(names, spikes, reference_spikes) if fx_net.layers[names.index(name)].spiking}
    row.update(fixed_accuracy=float(np.mean(fixed_pred == labels)),
               prediction_agreement=float(np.mean(fixed_pred == framework_pred)), spike_ratio=ratios,
               fixed_spikes=dict(zip(names, spikes)), float_spikes=dict(zip(names, reference_spikes)),
               saturation=saturation_totals(result, names), mismatches={"sim_torch": mismatches},
               compared_spikes={"sim_torch": compared},
               saturation_mismatches={"sim_torch": saturation_mismatches(result, other)})
    samples = min(config.lava_samples, integers.shape[1])
    if samples:
        _lavadl_check(row, fx_net, net.netx_path, integers[:, :samples])
    row["targets_met"] = targets_met(row)
    return row


def _lavadl_check(row: dict[str, Any], fx_net, path: Path, integers: np.ndarray) -> None:
    """The samples back to back as one stream through lava-dl's netx on Lava and through the simulator."""
    from bso_deploy.hardware.simulator import simulate

    from .thirdparty import run_lavadl_netx

    stream = integers.transpose(1, 0, *range(2, integers.ndim)).reshape(-1, 1, *integers.shape[2:])
    start = time.perf_counter()
    try:
        theirs = run_lavadl_netx(path, stream[:, 0].reshape(stream.shape[0], -1))
    except Exception as error:  # any Lava failure is a result of the benchmark, not a crash
        row["lava_error"] = f"{type(error).__name__}: {error}".splitlines()[0][:400]
        return
    ours = simulate(fx_net, stream).spikes
    if len(theirs) != len(ours):
        row["lava_error"] = f"lava-dl's network has {len(theirs)} layers, from_netx's {len(ours)}"
        return
    row["netx_mismatches"] = int(sum(np.sum(a.reshape(a.shape[0], -1) != b[:, 0].reshape(b.shape[0], -1))
                                     for a, b in zip(theirs, ours)))
    row["netx_compared_spikes"] = int(sum(a.size for a in theirs))
    row["lava_samples"] = int(integers.shape[1])
    row["seconds"]["lava_dl"] = time.perf_counter() - start


# ---------------------------------------------------------------- the benchmark

def add_deploy_arguments(parser):
    """The options of ``bso-deploy bench deploy`` (cli.py adds the sub-command and calls :func:`run_from_args`)."""
    defaults = DeployBenchConfig()
    parser.add_argument("--networks", default=",".join(NETWORKS), help=f"comma separated: {', '.join(NETWORKS)}")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training, data split and event streams")
    parser.add_argument("--lava-samples", type=int, default=defaults.lava_samples,
                        help="test samples also run on Lava (0: none)")
    parser.add_argument("--calibration-samples", type=int, default=defaults.calibration_samples,
                        help="training samples the compiler calibrates on (both scalings take the input range there)")
    parser.add_argument("--test-samples", type=int, default=None, help="evaluate the first N test samples "
                        f"(default: all; --quick: {QUICK_TEST_SAMPLES})")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch intra-op threads")
    parser.add_argument("--out", default=defaults.out_dir, help="output directory (deploy.json, deploy.png)")
    parser.add_argument("--cache", default=defaults.cache_dir, help="trained models, keyed by network, seed, sizes")
    parser.add_argument("--quick", action="store_true", help="tiny networks and few samples (a test, not figures)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run_from_args(args) -> int:
    config = DeployBenchConfig(networks=tuple(n for n in args.networks.split(",") if n), seed=args.seed,
                               lava_samples=args.lava_samples, calibration_samples=args.calibration_samples,
                               test_samples=args.test_samples, quick=args.quick, out_dir=args.out,
                               cache_dir=args.cache, threads=args.threads)
    run_deploy_bench(config, progress=not args.no_progress)
    return 0


def run_deploy_bench(config: DeployBenchConfig, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Train/load every network, evaluate it, print the table, write deploy.json and deploy.png."""
    import torch
    from tqdm.auto import tqdm

    start_all = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    disable = None if progress else True

    def bar(iterable, **kwargs):
        return tqdm(iterable, disable=disable, **kwargs)

    try:
        # every network is trained before anything imports Lava's runtime (it fixes the fork start method)
        networks = [build_network(name, config.seed, config.sizes, config.cache_dir)
                    for name in bar(config.networks, desc="bench deploy: train")]
        rows = []
        for net in bar(networks, desc="bench deploy: evaluate"):
            if net.kind == "netx":
                rows.append(_netx_row(net, config))
            else:
                rows.extend(_nir_rows(net, config, bar))
    finally:
        torch.set_num_threads(previous_threads)
    for row in rows:
        if row["error"] is None and row["profile"] is None:
            row["profile"] = "bso"
    report = {"rows": rows, "targets": TARGETS, "seed": config.seed, "quick": config.quick,
              "lava_samples": config.lava_samples, "calibration_samples": config.calibration_samples,
              "command": command if command is not None else " ".join(["bso-deploy", *sys.argv[1:]]),
              "seconds": time.perf_counter() - start_all}
    out = Path(config.out_dir)
    atomic_write_json(out / "deploy.json", report)
    plot_deploy_bench(rows, out / "deploy.png")
    print(format_deploy_table(rows))
    return report


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("met" if value else "MISSED")


def format_deploy_table(rows: list[dict[str, Any]]) -> str:
    low, high = TARGETS["spike_ratio"]
    header = (f"{'network':<13} {'scaling':<10} {'T':>4} {'fw %':>5} {'float %':>7} {'fixed %':>7} {'agree %':>7} "
              f"{'spike ratio per layer':<26} {'v sat':>6} {'mismatch':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        if r["error"] is not None and r["fixed_accuracy"] is None:
            lines.append(f"{r['network']:<13} {r['scaling']:<10} {r['time_steps']:>4} "
                         f"{_percent(r['framework_accuracy']):>5} {_percent(r['float_accuracy']):>7}  "
                         f"error: {r['error'][:120]}")
            continue
        ratios = " ".join("-" if v is None else f"{v:.2f}" for v in r["spike_ratio"].values())
        saturated = sum(s.get("v_steps", 0) for s in r["saturation"].values())
        counts = r["mismatches"] or {}
        mismatch = "/".join("-" if counts.get(k) is None else str(counts[k]) for k in ("sim_torch", "sim_lava"))
        if "netx_mismatches" in r:
            mismatch = f"{counts.get('sim_torch')}/{'-' if r['netx_mismatches'] is None else r['netx_mismatches']}"
        lines.append(f"{r['network']:<13} {r['scaling']:<10} {r['time_steps']:>4} "
                     f"{_percent(r['framework_accuracy']):>5} {_percent(r['float_accuracy']):>7} "
                     f"{_percent(r['fixed_accuracy']):>7} "
                     f"{_percent(r['prediction_agreement']):>7} {ratios:<26} {saturated:>6} {mismatch:>13}")
        for key in ("lava_error",):
            if r.get(key):
                lines.append(f"{'':<13} {key}: {r[key][:150]}")
    lines.append("mismatch: sim/torch on the test split, sim/Lava on the Lava subset (netx: sim/torch, from_netx "
                 "vs lava-dl's netx on Lava); fw: the framework's own forward pass; v sat: neuron-steps where v "
                 "saturated (simulator)")
    lines.append(f"targets: spike ratio in [{low}, {high}] per layer; fixed within "
                 f"{100 * TARGETS['accuracy_drop_max']:.0f} point of float; agreement >= "
                 f"{100 * TARGETS['prediction_agreement_min']:.0f}%; 0 mismatches; netx import 0 mismatches")
    for r in rows:
        met = r.get("targets_met") or {}
        lines.append(f"  {r['network']:<13} {r['scaling']:<10} " + ", ".join(
            f"{name} {_mark(value)}" for name, value in met.items()))
    return "\n".join(lines)


def plot_deploy_bench(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high = TARGETS["spike_ratio"]
    fig, (ratio_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    labels, colors = [], {"worst-case": "tab:red", "calibrated": "tab:blue", "netx": "tab:green"}
    position = 0
    for r in rows:
        for name, ratio in r["spike_ratio"].items():
            if ratio is not None:
                ratio_ax.bar(position, ratio, color=colors.get(r["scaling"], "gray"))
            labels.append(f"{r['network']}\n{name}\n{r['scaling']}")
            position += 1
    ratio_ax.axhspan(low, high, color="tab:green", alpha=0.15, label=f"target [{low}, {high}]")
    ratio_ax.axhline(1.0, color="black", linewidth=0.8)
    ratio_ax.set_xticks(range(len(labels)), labels, fontsize=6)
    ratio_ax.set(ylabel="fixed / float spikes", title="spike ratio per layer (red worst-case, blue calibrated, "
                 "green netx)")
    ratio_ax.title.set_fontsize(9)
    ratio_ax.legend(fontsize=7)
    names = [f"{r['network']}\n{r['scaling']}" for r in rows]
    index = np.arange(len(rows))
    floats = [np.nan if r["float_accuracy"] is None else 100 * r["float_accuracy"] for r in rows]
    fixed = [np.nan if r["fixed_accuracy"] is None else 100 * r["fixed_accuracy"] for r in rows]
    accuracy_ax.bar(index - 0.2, floats, width=0.4, label="float", color="tab:gray")
    accuracy_ax.bar(index + 0.2, fixed, width=0.4, label="fixed (sim)", color="tab:blue")
    accuracy_ax.set_xticks(index, names, fontsize=6)
    accuracy_ax.set(ylabel="test accuracy (%)", ylim=(0, 100), title="digits test split")
    accuracy_ax.legend(fontsize=7)
    save_figure(fig, path)
