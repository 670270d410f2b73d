"""The conv rows of ``bso-deploy bench sim``: the fixed-point backends against the float torch model of the same
graph on a conv net of the size people deploy on 28x28 images (issue 13).

The network is 32C3-P2-64C3-P2-FC (3x3 convs with BatchNorm and LIF, 2x2 pools, a linear classifier; the
first conv full precision, the second binary: profile ``bso`` as trained with T-BSO), randomly initialised
(seeded): the speed of a run does not depend on training. It is exported to NIR, compiled in profile bso for
``time_steps`` steps and fed ``conv_samples`` Fashion-MNIST test images (the first ones; uniform random images
where the data set is not installed, which the records say), repeated for ``time_steps`` steps, plus the
latency's zero steps for the fixed-point backends (docs/fixed-point.md §5.2).

Rows (each the fastest of ``repeats`` calls on all the images at once, after a warm-up): ``sim`` (a prepared
``Simulator``), ``torch`` (the torch integer reference on the CPU), ``float`` in float32 and float64 (the
NIR importer's module, ``from_nir``; float64 is what ``parity`` runs). Before timing, the simulator and the
torch reference are checked to give identical spikes and outputs. The summary holds the ratios of each
fixed-point row to the float32 and float64 rows, and the minutes each backend would take on 10,000 images.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bso_deploy.export.nir import NIRExportWarning, from_nir, to_nir
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.network import append_zero_steps
from bso_deploy.hardware.quantize import quantize_inputs
from bso_deploy.hardware.simulator import Simulator
from bso_deploy.hardware.torch_reference import TorchReference
from bso_deploy.parity_data import dataset_samples

from ..models import build_vgg

__all__ = ["CONV_CHANNELS", "CONV_INPUT_SHAPE", "CONV_NETWORK", "build_conv_graph", "conv_images", "measure_conv",
           "summarize_conv"]

CONV_INPUT_SHAPE = (1, 28, 28)
CONV_CHANNELS: tuple[int | str, ...] = (32, "A", 64, "A")  # 32C3-P2-64C3-P2, then the classifier
CONV_NETWORK = "cnn-32C3-P2-64C3-P2-FC-untrained"
TEST_SET = 10_000  # images in the Fashion-MNIST (and MNIST) test set, for the extrapolated minutes


def conv_images(count: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(images (count, 1, 28, 28) float32 in [0, 1], where they come from): the first Fashion-MNIST test
    images, or seeded uniform random images where the data set is not installed."""
    try:
        images, _ = dataset_samples("fashion-mnist", count, seed=seed)
    except FileNotFoundError:
        images = np.random.default_rng(seed).random((count, *CONV_INPUT_SHAPE), dtype=np.float32)
        return images, "uniform random (Fashion-MNIST not installed)"
    index = np.arange(count) % len(images)
    return images[index], "fashion-mnist test"


def build_conv_graph(seed: int = 0):
    """The seeded, untrained conv net (module docstring) exported to NIR, in eval mode."""
    model = build_vgg(CONV_INPUT_SHAPE, 10, channels=CONV_CHANNELS, seed=seed).eval()
    with warnings.catch_warnings():  # the subtractive reset travels in NIR metadata (docs/nir.md), as intended
        warnings.simplefilter("ignore", NIRExportWarning)
        return to_nir(model, input_shape=CONV_INPUT_SHAPE)


def _float_seconds(graph, x: np.ndarray, dtype: torch.dtype, best_seconds: Callable, repeats: int) -> float:
    module = from_nir(graph, dtype=dtype)
    inputs = torch.as_tensor(x, dtype=dtype)
    with torch.no_grad():
        return best_seconds(lambda: module(inputs), repeats)


def measure_conv(time_steps: int, samples: int, seed: int, repeats: int,
                 best_seconds: Callable[[Callable[[], Any], int], float]) -> tuple[list[dict], dict]:
    """(records, summary) of the conv rows: records as ``bench/sim.json``'s (backend, mode "batched", batch,
    samples_per_second, us_per_sample, time_steps, steps, network, profile: the compiled one's) plus inputs
    and, for the float rows, dtype; ``best_seconds(call, repeats)`` times a call."""
    graph = build_conv_graph(seed)
    fx_net = compile_nir(graph, profile="bso", time_steps=time_steps)
    images, source = conv_images(samples, seed)
    x = np.broadcast_to(images, (time_steps, *images.shape)).copy()
    integers = append_zero_steps(quantize_inputs(fx_net, x), fx_net.latency)
    simulator, reference = Simulator(fx_net), TorchReference(fx_net, device="cpu")
    expected, check = simulator.run(integers), reference.run(integers[:, :min(samples, 16)])
    for index, (ours, theirs) in enumerate(zip(expected.spikes, check.spikes)):
        np.testing.assert_array_equal(theirs, ours[:, :check.output.shape[1]],
                                      err_msg=f"torch reference != simulator: spikes of layer {index}")
    np.testing.assert_array_equal(check.output, expected.output[:, :check.output.shape[1]])
    start = time.perf_counter()
    seconds = {"sim": best_seconds(lambda: simulator.run(integers), repeats),
               "torch": best_seconds(lambda: reference.run(integers), repeats),
               "float32": _float_seconds(graph, x, torch.float32, best_seconds, repeats),
               "float64": _float_seconds(graph, x, torch.float64, best_seconds, repeats)}
    wall = time.perf_counter() - start
    records = [{"backend": "float" if name.startswith("float") else name, "mode": "batched", "batch": samples,
                "samples_per_second": samples / value, "us_per_sample": value / samples * 1e6,
                "time_steps": time_steps, "steps": time_steps + (0 if name.startswith("float") else fx_net.latency),
                "network": CONV_NETWORK, "profile": fx_net.profile, "inputs": source,
                **({"dtype": name} if name.startswith("float") else {})}
               for name, value in seconds.items()]
    summary = {"conv_network": CONV_NETWORK, "conv_samples": samples, "conv_inputs": source,
               "conv_spike_rates": [float(s.mean()) for s in expected.spikes[:-1]], "conv_timing_seconds": wall,
               **{f"conv_{name}_over_{dtype}": seconds[name] / seconds[dtype]
                  for name in ("sim", "torch") for dtype in ("float32", "float64")},
               **{f"conv_{name}_minutes_for_10k": value / samples * TEST_SET / 60 for name, value in seconds.items()}}
    return records, summary


def summarize_conv(summary: dict, time_steps: int) -> str:
    """The conv rows' ratios and the minutes for a 10,000-image test set, as printed lines."""
    rates = ", ".join(f"{rate:.3f}" for rate in summary["conv_spike_rates"])
    return "\n".join([
        f"conv net {summary['conv_network']} (T = {time_steps}, {summary['conv_samples']} images: "
        f"{summary['conv_inputs']}; spike rates {rates}):",
        f"  simulator vs float torch: {summary['conv_sim_over_float32']:.2f}x float32, "
        f"{summary['conv_sim_over_float64']:.2f}x float64; torch reference (CPU) "
        f"{summary['conv_torch_over_float32']:.2f}x float32, {summary['conv_torch_over_float64']:.2f}x float64",
        f"  10,000 images: simulator {summary['conv_sim_minutes_for_10k']:.1f} min, torch reference "
        f"{summary['conv_torch_minutes_for_10k']:.1f} min, float32 {summary['conv_float32_minutes_for_10k']:.1f} "
        f"min, float64 {summary['conv_float64_minutes_for_10k']:.1f} min"])
