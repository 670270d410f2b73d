"""``bso-deploy bench deploy``: how faithfully networks made by other tools deploy (issue 11's benchmark).

Each network of :mod:`.thirdparty` is trained by its own framework on digits (seeded, cached) and exported by
it. A NIR graph is compiled to profile ``bso`` once per scaling (``worst-case``, docs/fixed-point.md §10.3,
and ``calibrated``, §10.6; both on the same ``calibration_samples`` training inputs, from which the compiler
also takes the input range) and checked with ``hardware.parity.check_parity`` on the whole test split, in
chunks that bound the recorded states (:func:`merge_reports` sums their counts):

- float: our float backend on the graph; fixed: the first fixed backend (the simulator, ``sim``);
- per spiking layer (float step t against fixed step t + k + 1 for layer k): ``spike_ratio`` (fixed / float
  spikes), ``spike_precision``, ``spike_recall``, ``spike_agreement`` (equal values, silent ones included);
- ``saturation``: the simulator's counts (§5.6) per layer, summed over the test split;
- ``weight_rounding``: the float model with only its weights rounded to 8 bits (:mod:`.weight_rounding`): its
  prediction agreement with float says how much of the fixed network's disagreement the weights explain;
- ``mismatches``: spikes, u, v and saturation counts that differ, torch reference against the simulator on the
  test split (``sim_torch``), Lava against the simulator on the first ``lava_samples`` samples (``sim_lava``).

A lava-dl netx file is imported with ``bso_deploy.export.netx.from_netx`` (no re-quantization) and checked the
same way without a float model (sim and torch); its float is lava-dl's own slayer forward pass (accuracy,
predictions and spike counts recorded at training, on the stream the fixed backends get: the T input steps and
one zero step per block, which must equal the imported network's latency), and lava-dl's own
``netx.hdf5.Network`` runs the first ``lava_samples`` samples back to back on Lava fixed_pt against the simulator
on the same stream (``netx_mismatches``). A network that fails to compile or run keeps its row, with the error
in ``error`` (``lava_error`` for Lava alone).

``bench/deploy.json``: ``rows`` (one per network x scaling), ``targets`` (the issue's, :data:`TARGETS`), per
row ``targets_met``, ``targets_summary`` (every row with a figure meets the target), ``seed``, ``command``,
``seconds``; ``bench/deploy.png``: spike ratio, precision and recall per layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bso_deploy.export.netx import from_netx
from bso_deploy.hardware.backends import run_fixed
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.lava.netx_runner import run_lavadl_netx  # imports Lava and lava-dl only when called
from bso_deploy.hardware.network import append_zero_steps
from bso_deploy.hardware.parity import check_parity
from bso_deploy.hardware.simulator import simulate

from ..io import atomic_write_json
from .deploy_report import TARGETS, format_deploy_table, plot_deploy_bench
from .thirdparty import NETWORKS, NetworkSizes, ThirdPartyNetwork, build_network
from .weight_rounding import weight_rounding_agreement

__all__ = ["SCALINGS", "TARGETS", "DeployBenchConfig", "format_deploy_table", "run_deploy_bench",
           "run_from_args"]

SCALINGS = ("worst-case", "calibrated")
QUICK_TEST_SAMPLES = 60
MEMORY_BUDGET = 1 << 30  # bytes of recorded states per check_parity call


@dataclass(frozen=True)
class DeployBenchConfig:
    networks: tuple[str, ...] = field(default=NETWORKS)
    seed: int = 0
    lava_samples: int = 20
    calibration_samples: int = 64
    test_samples: int | None = None  # None: the whole test split (quick: QUICK_TEST_SAMPLES)
    chunk: int = 450  # at most this many samples per check_parity call (MEMORY_BUDGET may make it fewer)
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

def _parity_options(net: ThirdPartyNetwork, scaling: str, config: DeployBenchConfig) -> dict[str, Any]:
    """Profile bso, ``scaling``; both scalings take the input range from the same training samples (event
    counts keep their integers, docs/fixed-point.md §10.1, §10.6), so they differ only in the layer scales."""
    calibration = net.train_inputs[:, :config.calibration_samples].astype(np.float64)
    return {"profile": "bso", "dt": net.dt, "scaling": scaling, "calibration": calibration}


def _chunk_size(fx_net, steps: int, config: DeployBenchConfig) -> int:
    """Samples per check_parity call: u and v (int64) of every neuron and step for two backends fit in
    MEMORY_BUDGET."""
    per_sample = 4 * 8 * sum(layer.num_neurons for layer in fx_net.layers) * (steps + fx_net.latency)
    return max(1, min(config.chunk, MEMORY_BUDGET // per_sample))


def merge_reports(reports: list) -> dict[str, Any]:
    """One row's figures from ParityReports of consecutive chunks of samples: counts summed, fractions
    weighted by samples (accuracy, agreement) or rebuilt from the summed counts (spike ratio, precision,
    recall: matched spikes = precision x fixed spikes of each chunk)."""
    samples = sum(r.samples for r in reports)

    def weighted(field_name: str) -> float | None:
        values = [getattr(r, field_name) for r in reports]
        return None if any(v is None for v in values) else float(sum(v * r.samples for v, r in zip(values, reports))
                                                                   / samples)

    floats: dict[str, int] = {}
    fixed: dict[str, int] = {}
    matched: dict[str, int] = {}
    agreement: dict[str, float] = {}
    saturation: dict[str, dict[str, int]] = {}
    for r in reports:
        for name, count in r.fixed_spikes.items():
            floats[name] = floats.get(name, 0) + r.float_spikes[name]
            fixed[name] = fixed.get(name, 0) + count
            precision = r.spike_precision[name]
            matched[name] = matched.get(name, 0) + (0 if precision is None else round(precision * count))
            agreement[name] = agreement.get(name, 0.0) + r.float_fixed_agreement[name] * r.samples / samples
        for name, totals in r.saturation.items():
            saturation[name] = {key: saturation.get(name, {}).get(key, 0) + value for key, value in totals.items()}
    seconds: dict[str, float] = {}
    for r in reports:
        for name, value in r.backend_seconds.items():
            seconds[name] = seconds.get(name, 0.0) + value
    return {"float_accuracy": weighted("float_accuracy"), "fixed_accuracy": weighted("fixed_accuracy"),
            "prediction_agreement": weighted("prediction_agreement"),
            "backend_accuracy": {name: float(sum(r.backend_accuracy[name] * r.samples for r in reports) / samples)
                                 for name in reports[0].backend_accuracy},
            "spike_ratio": {n: (fixed[n] / floats[n] if floats[n] else None) for n in fixed},
            "spike_precision": {n: (matched[n] / fixed[n] if fixed[n] else None) for n in fixed},
            "spike_recall": {n: (matched[n] / floats[n] if floats[n] else None) for n in fixed},
            "spike_agreement": agreement, "float_spikes": floats, "fixed_spikes": fixed, "saturation": saturation,
            "mismatches": sum(r.mismatches for r in reports),
            "compared_spikes": sum(r.compared_spikes for r in reports),
            "saturation_mismatches": sum(r.saturation_mismatches for r in reports),
            "input_clipped_values": sum(r.input_clipped for r in reports),
            "warnings": sorted({w for r in reports for w in r.warnings}), "backend_seconds": seconds}


def _nir_rows(net: ThirdPartyNetwork, config: DeployBenchConfig, bar) -> list[dict[str, Any]]:
    """Rows of a NIR network: ``check_parity`` (compiling the graph with the row's scaling) on chunks of the
    test split with sim and torch, and on the first ``lava_samples`` samples with sim and Lava."""
    count = config.samples_for(net.test_labels.size)
    x, labels = net.test_inputs[:, :count].astype(np.float64), net.test_labels[:count]
    steps = int(x.shape[0])
    start = time.perf_counter()
    rounding = weight_rounding_agreement(net.graph, x, labels, net.dt)
    rounding_seconds = time.perf_counter() - start
    rows = []
    for scaling in SCALINGS:
        row = _base_row(net, scaling, steps, count)
        row["weight_rounding"] = rounding  # the float model with 8-bit weights alone (diagnostic)
        rows.append(row)
        options = _parity_options(net, scaling, config)
        try:  # what check_parity compiles, for the report of the scales (and the compile error, if any)
            start = time.perf_counter()
            fx_net = compile_nir(net.graph, time_steps=steps, **options)
            row["seconds"] = {"compile": time.perf_counter() - start, "weight_rounding": rounding_seconds}
        except (ValueError, TypeError, NotImplementedError) as error:
            row["error"] = f"compile: {type(error).__name__}: {error}"
            row["targets_met"] = targets_met(row)
            continue
        row.update(profile=fx_net.profile, input_scale=fx_net.input_scale, input_max=fx_net.input_max,
                   layers=[{"name": q.get("layer"), "scale": q.get("scale"), "binding_bound": q.get("binding_bound")}
                           for q in fx_net.quantization])
        start, chunk = time.perf_counter(), _chunk_size(fx_net, steps, config)
        reports = [check_parity(net.graph, ("sim", "torch"), inputs=x[:, i:i + chunk], labels=labels[i:i + chunk],
                                **options)
                   for i in bar(range(0, count, chunk), desc=f"{net.name} {scaling}", leave=False)]
        merged = merge_reports(reports)
        row["seconds"].update(parity=time.perf_counter() - start, **merged.pop("backend_seconds"))
        row.update(merged)
        row["mismatches"] = {"sim_torch": merged["mismatches"], "sim_lava": None}
        row["compared_spikes"] = {"sim_torch": merged["compared_spikes"]}
        row["saturation_mismatches"] = {"sim_torch": merged["saturation_mismatches"]}
        row["silent_layers"] = [name for name, n in row["fixed_spikes"].items() if n == 0]
        lava = min(config.lava_samples, count)
        if lava:
            _lava_check(row, net, options, x[:, :lava], labels[:lava])
        row["targets_met"] = targets_met(row)
    return rows


def _lava_check(row: dict[str, Any], net: ThirdPartyNetwork, options: dict[str, Any], x: np.ndarray,
                labels: np.ndarray) -> None:
    start = time.perf_counter()
    try:
        report = check_parity(net.graph, ("sim", "lava"), inputs=x, labels=labels, **options)
    except Exception as error:  # any Lava failure is a result of the benchmark, not a crash
        row["lava_error"] = f"{type(error).__name__}: {error}".splitlines()[0][:400]
        return
    row["mismatches"]["sim_lava"] = report.mismatches
    row["compared_spikes"]["sim_lava"] = report.compared_spikes
    row["saturation_mismatches"]["sim_lava"] = report.saturation_mismatches
    row["lava_samples"] = report.samples
    row["lava_accuracy"] = report.backend_accuracy.get("lava")
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
    """The netx file imported with ``from_netx``: ``check_parity`` of sim and torch on the test split (no float
    model: float is slayer's forward pass, recorded at training), and lava-dl's netx on Lava (:func:`_lavadl_check`)."""
    count = config.samples_for(net.test_labels.size)
    x, labels = net.test_inputs[:, :count].astype(np.float64), net.test_labels[:count]
    framework_pred = np.asarray(net.framework_predictions)[:count]
    framework_spikes = np.asarray(net.framework_layer_spikes, dtype=np.int64)[:count].sum(axis=0)
    row = _base_row(net, "netx", int(x.shape[0]), count)
    row.update(float_accuracy=float(np.mean(framework_pred == labels)), seconds={}, netx_mismatches=None,
               float_is="lava-dl slayer forward pass")
    try:
        start = time.perf_counter()
        fx_net = from_netx(net.netx_path)
        row["seconds"]["import"] = time.perf_counter() - start
    except (ValueError, TypeError, KeyError, NotImplementedError) as error:
        row["error"] = f"from_netx: {type(error).__name__}: {error}"
        row["targets_met"] = targets_met(row)
        return row
    if net.framework_flush_steps != fx_net.latency:  # slayer's run and ours must see the same stream
        row["error"] = (f"slayer's reference run had {net.framework_flush_steps} zero steps after the input, the "
                        f"imported network's latency is {fx_net.latency}; delete the cache folder to retrain")
        row["targets_met"] = targets_met(row)
        return row
    row["profile"] = fx_net.profile
    start = time.perf_counter()
    report = check_parity(fx_net, ("sim", "torch"), inputs=x, labels=labels)
    row["seconds"].update(parity=time.perf_counter() - start, **report.backend_seconds)
    run = run_fixed(fx_net, "sim", x)  # predictions and spike counts, against slayer's
    spiking = [layer.name for layer in fx_net.layers if layer.spiking]
    fixed_spikes = {name: int(run.spike_counts[name]) for name in spiking}
    float_spikes = {name: int(n) for name, n in zip(spiking, framework_spikes)}
    row.update(fixed_accuracy=report.fixed_accuracy, backend_accuracy=report.backend_accuracy,
               prediction_agreement=float(np.mean(run.predictions == framework_pred)),
               spike_ratio={name: (fixed_spikes[name] / float_spikes[name] if float_spikes[name] else None)
                            for name in float_spikes},
               fixed_spikes=fixed_spikes, float_spikes=float_spikes, saturation=report.saturation,
               mismatches={"sim_torch": report.mismatches}, compared_spikes={"sim_torch": report.compared_spikes},
               saturation_mismatches={"sim_torch": report.saturation_mismatches},
               input_clipped_values=report.input_clipped)
    samples = min(config.lava_samples, count)
    if samples:
        _lavadl_check(row, fx_net, net.netx_path, x[:, :samples])
    row["targets_met"] = targets_met(row)
    return row


def _lavadl_check(row: dict[str, Any], fx_net, path: Path, x: np.ndarray) -> None:
    """The samples (T steps and the latency's zero steps each) back to back as one stream through lava-dl's
    netx on Lava fixed_pt and through the simulator: spikes of every layer compared (``netx_mismatches``)."""
    integers = append_zero_steps(x.astype(np.int64), fx_net.latency)
    stream = integers.transpose(1, 0, *range(2, integers.ndim)).reshape(-1, 1, *integers.shape[2:])
    start = time.perf_counter()
    try:
        theirs = run_lavadl_netx(path, stream[:, 0].reshape(stream.shape[0], -1))[0]
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

def run_from_args(args) -> int:
    config = DeployBenchConfig(networks=tuple(n for n in args.networks.split(",") if n), seed=args.seed,
                               lava_samples=args.lava_samples, calibration_samples=args.calibration_samples,
                               test_samples=args.test_samples, quick=args.quick, out_dir=args.out,
                               cache_dir=args.cache, threads=args.threads)
    run_deploy_bench(config, progress=not args.no_progress, command=command_line(config))
    return 0


def command_line(config: DeployBenchConfig) -> str:
    """The ``bso-deploy bench deploy`` command that reproduces ``config`` (every option spelled out)."""
    parts = ["bso-deploy", "bench", "deploy", "--networks", ",".join(config.networks), "--seed", str(config.seed),
             "--lava-samples", str(config.lava_samples), "--calibration-samples", str(config.calibration_samples),
             "--threads", str(config.threads), "--out", config.out_dir, "--cache", config.cache_dir]
    if config.test_samples is not None:
        parts += ["--test-samples", str(config.test_samples)]
    return " ".join(parts + (["--quick"] if config.quick else []))


def run_deploy_bench(config: DeployBenchConfig, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Train/load every network, evaluate it, print the table, write deploy.json and deploy.png."""
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
    summary = {name: all(r["targets_met"].get(name) is not False for r in rows)
               for name in dict.fromkeys(key for r in rows for key in r.get("targets_met", {}))}
    report = {"rows": rows, "targets": TARGETS, "targets_summary": summary, "seed": config.seed, "quick": config.quick,
              "lava_samples": config.lava_samples, "calibration_samples": config.calibration_samples,
              "command": command if command is not None else command_line(config),
              "seconds": time.perf_counter() - start_all}
    out = Path(config.out_dir)
    atomic_write_json(out / "deploy.json", report)
    plot_deploy_bench(rows, out / "deploy.png")
    print(format_deploy_table(rows))
    return report
