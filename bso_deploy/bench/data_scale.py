"""Deployment at scale (issue 13): ``bso-deploy bench scale`` (or ``python -m bso_deploy.bench.data_scale``)
prints a table and writes
``bench/parity_<dataset>.json``.

For each model (MLP, CNN), the T-BSO network that ``bso-deploy bench data`` trains (the same cache folder,
:func:`.data.run_folder`; trained here when not cached, with ``epochs`` / ``cnn_epochs`` epochs, the CNN on
the first ``cnn_train_samples`` training images), exported to NIR and compiled in profile bso with the
compiler's defaults, then:

- ``parity``: :func:`~bso_deploy.hardware.parity.check_parity` on the first ``test_samples`` test images
  (all 10,000 by default), simulator against torch reference spike for spike and state for state
  (``mismatches``, must be 0), the NIR graph's float model beside them (``float_accuracy``) and the labels
  (``fixed_accuracy``), in passes of bounded memory (``PARITY_MEMORY``); ``backend_seconds`` per backend;
- ``timing``: :func:`.data.cached_deployment`, the simulator against the float torch model of the same
  network (eval mode, same encoded batches) over the whole test set: ``sim_seconds``,
  ``float_torch_seconds`` and their ratio;
- ``lava``: the same as ``parity`` against Lava's runtime on the first ``lava_samples`` images.

The JSON is written after every stage (``complete`` false until the end), so a run cut short keeps its figures.

The figures are one machine's wall clock (``threads`` torch threads); the counts and accuracies are exact.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bso_deploy.export.nir import NIRExportWarning, to_nir
from bso_deploy.hardware.parity import check_parity

from ..io import atomic_write_json
from ..options import DATA_BENCH_MODELS
from ..parity_data import dataset_samples
from .data import DataBenchConfig, cached_deployment, run_folder, trained_run

METHOD = "tbso"
PARITY_KEYS = ("samples", "mismatches", "compared_spikes", "compared_states", "fixed_accuracy", "float_accuracy",
               "prediction_agreement", "input_clipped", "backend_seconds", "warnings")


@dataclass(frozen=True)
class ScaleBenchConfig:
    """What :func:`run_scale_bench` deploys and on how many images (module docstring)."""

    dataset: str = "fashion-mnist"
    models: tuple[str, ...] = field(default=DATA_BENCH_MODELS)
    epochs: int = 1
    cnn_epochs: int = 1
    cnn_train_samples: int | None = 15000
    test_samples: int = 10000
    lava_samples: int = 200
    threads: int = 1
    data_root: str | None = None
    out_dir: str = "bench"
    cache_dir: str = "runs/bench-data-cache"

    def __post_init__(self) -> None:
        models = tuple(self.models)
        if not models or any(m not in DATA_BENCH_MODELS for m in models) or len(set(models)) != len(models):
            raise ValueError(f"models must be distinct names among {', '.join(DATA_BENCH_MODELS)}, got {models!r}")
        object.__setattr__(self, "models", models)
        for name, low in (("epochs", 1), ("cnn_epochs", 1), ("test_samples", 1), ("lava_samples", 0),
                          ("threads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.data_config()  # the data set, the CNN subset: validated there

    def data_config(self) -> DataBenchConfig:
        """The ``bench data`` configuration whose T-BSO runs these are (its cache folders)."""
        return DataBenchConfig(dataset=self.dataset, models=self.models, methods=(METHOD,), epochs=self.epochs,
                               cnn_epochs=self.cnn_epochs, cnn_train_samples=self.cnn_train_samples,
                               data_root=self.data_root, cache_dir=self.cache_dir)

    def command(self) -> str:
        parts = ["bso-deploy", "bench", "scale", "--dataset", self.dataset, "--models",
                 ",".join(self.models), "--epochs", str(self.epochs), "--cnn-epochs", str(self.cnn_epochs),
                 "--test-samples", str(self.test_samples), "--lava-samples", str(self.lava_samples), "--threads",
                 str(self.threads), "--out", self.out_dir, "--cache", self.cache_dir]
        if self.cnn_train_samples is not None:
            parts += ["--cnn-train-samples", str(self.cnn_train_samples)]
        return " ".join(parts + ([] if self.data_root is None else ["--data-root", self.data_root]))


def _parity(graph, backends: tuple[str, ...], inputs, labels, time_steps: int) -> dict[str, Any]:
    report = check_parity(graph, backends=backends, inputs=inputs, labels=labels, profile="bso",
                          time_steps=time_steps).to_dict()
    return {key: report[key] for key in PARITY_KEYS}


def model_row(config: ScaleBenchConfig, model: str, progress: bool,
              save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """One model's training summary, parity (sim vs torch), deployment timing and Lava parity; ``save(row)``
    after each stage (so a long run keeps what it measured)."""
    data = config.data_config()
    train = data.train_config(model, METHOD)
    folder = run_folder(data, train)
    run, cached = trained_run(train, folder, progress=progress, train_samples=data.train_samples_of(model))
    input_shape = tuple(run.split.input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)  # the subtractive reset: carried in node metadata
        graph = to_nir(run.model.eval(), input_shape=input_shape,
                       metadata={"dataset": config.dataset, "time_steps": train.time_steps})
    inputs, labels = dataset_samples(config.dataset, config.test_samples, root=config.data_root)
    inputs = inputs.reshape(len(inputs), *input_shape)  # digits' (64,) as the CNN's (1, 8, 8) image
    row: dict[str, Any] = {"model": model, "method": METHOD, "time_steps": train.time_steps, "epochs": run.epoch,
                           "train_samples": len(run.split.train), "test_accuracy": run.history[-1]["test_accuracy"],
                           "run_folder": str(folder), "trained_here": not cached}
    start = time.perf_counter()
    row["parity"] = _parity(graph, ("sim", "torch"), inputs, labels, train.time_steps)
    row["parity"]["seconds"] = time.perf_counter() - start
    save(row)
    timing, _ = cached_deployment(run, folder)
    row["timing"] = {key: timing.get(key) for key in ("test_samples", "sim_seconds", "float_torch_seconds",
                                                        "fixed_accuracy", "float_accuracy", "error")}
    if timing.get("sim_seconds"):
        row["timing"]["sim_over_float_torch"] = timing["sim_seconds"] / timing["float_torch_seconds"]
    save(row)
    if config.lava_samples:
        start = time.perf_counter()
        count = config.lava_samples
        row["lava"] = _parity(graph, ("sim", "lava"), inputs[:count], labels[:count], train.time_steps)
        row["lava"]["seconds"] = time.perf_counter() - start
        save(row)
    return row


def format_scale_table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'model':<5} {'test acc':>8} {'images':>6} {'sim=torch':>10} {'fixed':>7} {'float':>7} "
              f"{'agree':>7} {'lava n':>6} {'lava mism':>9} {'sim s':>7} {'torch s':>7} {'float torch s':>13}")
    lines = [header, "-" * len(header)]
    for row in rows:
        parity, lava, timing = row["parity"], row.get("lava") or {}, row["timing"]

        def number(value, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines.append(f"{row['model']:<5} {row['test_accuracy']:>8.4f} {parity['samples']:>6} "
                     f"{parity['mismatches']:>10} {number(parity['fixed_accuracy'], '.4f'):>7} "
                     f"{number(parity['float_accuracy'], '.4f'):>7} {number(parity['prediction_agreement'], '.4f'):>7} "
                     f"{number(lava.get('samples'), 'd'):>6} {number(lava.get('mismatches'), 'd'):>9} "
                     f"{number(timing.get('sim_seconds'), '.1f'):>7} "
                     f"{number(parity['backend_seconds'].get('torch'), '.1f'):>7} "
                     f"{number(timing.get('float_torch_seconds'), '.1f'):>13}")
    return "\n".join(lines)


def run_scale_bench(config: ScaleBenchConfig, progress: bool = True) -> dict[str, Any]:
    """Every model's row (:func:`model_row`); prints the table, writes ``OUT/parity_<dataset>.json`` after
    every stage (``complete``: false until the last)."""
    start = time.perf_counter()
    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    rows: list[dict[str, Any]] = []
    path = Path(config.out_dir) / f"parity_{config.dataset}.json"

    def report(complete: bool) -> dict[str, Any]:
        return {"dataset": config.dataset, "rows": rows, "complete": complete, "settings": asdict(config),
                "command": config.command(), "torch_version": torch.__version__,
                "seconds": time.perf_counter() - start}

    def save(row: dict[str, Any]) -> None:
        atomic_write_json(path, report(False) | {"rows": [*rows, row]})

    try:
        for model in config.models:
            rows.append(model_row(config, model, progress, save))
    finally:
        torch.set_num_threads(previous)
    final = report(True)
    atomic_write_json(path, final)
    print(format_scale_table(rows))
    return final


def run_from_args(args: argparse.Namespace) -> int:
    """``bso-deploy bench scale``: the benchmark for parsed options (errors reach the CLI's boundary)."""
    config = ScaleBenchConfig(dataset=args.dataset, models=tuple(m for m in args.models.split(",") if m),
                              epochs=args.epochs, cnn_epochs=args.cnn_epochs,
                              cnn_train_samples=args.cnn_train_samples or None, test_samples=args.test_samples,
                              lava_samples=args.lava_samples, threads=args.threads, data_root=args.data_root,
                              out_dir=args.out, cache_dir=args.cache)
    run_scale_bench(config, progress=not args.no_progress)
    return 0


def main(argv: list[str] | None = None) -> int:
    defaults = ScaleBenchConfig()
    parser = argparse.ArgumentParser(prog="python -m bso_deploy.bench.data_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=defaults.dataset)
    parser.add_argument("--models", default=",".join(defaults.models), help="comma separated: mlp, cnn")
    for name in ("epochs", "cnn_epochs", "cnn_train_samples", "test_samples", "lava_samples", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=defaults.out_dir)
    parser.add_argument("--cache", default=defaults.cache_dir)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = ScaleBenchConfig(dataset=args.dataset, models=tuple(m for m in args.models.split(",") if m),
                                  epochs=args.epochs, cnn_epochs=args.cnn_epochs,
                                  cnn_train_samples=args.cnn_train_samples, test_samples=args.test_samples,
                                  lava_samples=args.lava_samples, threads=args.threads, data_root=args.data_root,
                                  out_dir=args.out, cache_dir=args.cache)
        run_scale_bench(config, progress=not args.no_progress)
    except (ValueError, OSError) as error:
        print(f"bench data_scale: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
