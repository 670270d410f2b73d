"""The offline study behind the shared-counter population rule (docs/onchip-learning.md §20): the rule emulated in
float units on the chip's own hidden spikes of the adaptation scenario, over a grid of populations P,
thresholds theta, margins A, bias rates and threshold growths. Prints one row per setting (accuracy after the
stream, the largest fall after 200 samples, flips, the curve every 100 samples).

    .venv/bin/python examples/counter_rule_study.py [--scenario invert|class-incremental] [--grid small|full]

Per stream sample and window step t (T = 4): the trace x = x / 2 + s[t] (the §3 trace in spike units), the class
output y_k = (W_k / P) . s[t] + b_k with W_k = sum_p W_(kP+p) the class weight, the error e_k = clip(y_k, -A, A)
- target_k (§5), then a_kj += e_k x_j; a_kj > theta with some member at +1: W_kj -= 2, a_kj -= theta (and the
mirror), a clipped to +-theta; b_k -= bias_rate e_k; theta = theta0 (1 + growth n / 1000) after n samples. The
test prediction is argmax_k (W_k / P) . counts + T b_k, as the readout's v at the last step. The integer rule is
the same with every quantity scaled (bso_deploy.experiments.adaptation_reference.counter_fields).
"""

from __future__ import annotations

import argparse
import itertools
import warnings

import numpy as np
from bso_deploy.export.nir import NIRExportWarning, to_nir
from bso_deploy.hardware.quantize import quantize_inputs

from bso_deploy.experiments.adaptation import _arrays, _pretrain, _steps, _stream, compile_deployed
from bso_deploy.experiments.adaptation_config import AdaptationConfig
from bso_deploy.experiments.adaptation_reference import readout_spikes
from bso_deploy.experiments.adaptation_scenarios import image_shape, shift_inputs

SCENARIOS = {"invert": {"shift": "invert"}, "class-incremental": {"shift": "none", "pretrain_classes": 5}}
GRIDS = {"small": [(8, 8.0, 2.0, 2 ** -7, 4.0), (8, 8.0, 2.0, 2 ** -9, 4.0), (8, 32.0, 8.0, 2 ** -6, 0.0)],
         "full": list(itertools.product((4, 8, 16), (4.0, 8.0, 16.0, 32.0), (1.0, 2.0, 4.0, 8.0),
                                        (2 ** -9, 2 ** -7), (0.0, 4.0)))}


def chip_spikes(config: AdaptationConfig) -> dict[str, np.ndarray]:
    """The readout's input spikes on the chip (T, N, n_in) for the stream and the test set, the labels and the
    deployed signs, from the scenario's own pretraining and compile."""
    model, split = _pretrain(config, progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=NIRExportWarning)
        fx_net = compile_deployed(to_nir(model), config.time_steps)
    (train_x, train_y), (test_x, test_y) = _arrays(split.train), _arrays(split.test)
    shape = image_shape(split.input_shape)
    order = _stream(config, len(train_x))
    spikes = {name: readout_spikes(fx_net, _steps(quantize_inputs(fx_net, shift_inputs(x, config.shift, shape)),
                                                  config.time_steps), config.time_steps)
              for name, x in (("stream", train_x[order]), ("test", test_x))}
    return {**spikes, "stream_y": train_y[order], "test_y": test_y, "weight": np.asarray(fx_net.layers[-1].weight)}


def counter_update(weight: np.ndarray, accumulator: np.ndarray, gradient: np.ndarray, limit: float,
                   population: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One step of the counter rule in float units (module docstring): (class weights, accumulators, flips)."""
    accumulator = accumulator + gradient
    down = (accumulator > limit) & (weight > -population)
    up = (accumulator < -limit) & (weight < population)
    accumulator = np.clip(accumulator - limit * down + limit * up, -limit, limit)
    return weight - 2 * down + 2 * up, accumulator, int(down.sum() + up.sum())


def emulate(data: dict[str, np.ndarray], population: int, theta: float, margin: float, bias_rate: float,
            growth: float, pretrain_classes: int) -> tuple[list[float], int]:
    """The counter rule in float units (module docstring): (test accuracy every 100 samples, flips); for a
    class-incremental scenario the accuracy of the new classes."""
    stream, labels, test, test_y = data["stream"].astype(float), data["stream_y"], data["test"].sum(0), data["test_y"]
    steps, samples, n_in = stream.shape
    classes = data["weight"].shape[0]
    weight = population * data["weight"].astype(np.int64)
    accumulator, bias = np.zeros((classes, n_in)), np.zeros(classes)
    scored = test_y >= pretrain_classes

    def accuracy() -> float:
        predictions = np.argmax(test @ (weight / population).T + steps * bias, axis=1)
        return float(np.mean(predictions[scored] == test_y[scored]))

    curve, flips = [accuracy()], 0
    for n in range(samples):
        trace, limit = np.zeros(n_in), theta * (1 + growth * n / 1000)
        for t in range(steps):
            trace = 0.5 * trace + stream[t, n]
            target = np.full(classes, -margin)
            target[labels[n]] = margin
            error = np.clip((weight / population) @ stream[t, n] + bias, -margin, margin) - target
            bias -= bias_rate * error
            weight, accumulator, moved = counter_update(weight, accumulator, np.outer(error, trace), limit,
                                                        population)
            flips += moved
        if (n + 1) % 100 == 0:
            curve.append(accuracy())
    return curve, flips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="invert")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="small")
    args = parser.parse_args()
    config = AdaptationConfig(**SCENARIOS[args.scenario])
    data = chip_spikes(config)
    for population, theta, margin, bias_rate, growth in GRIDS[args.grid]:
        curve, flips = emulate(data, population, theta, margin, bias_rate, growth, config.pretrain_classes)
        later = curve[2:]
        drop = max(later[i] - min(later[i:]) for i in range(len(later)))
        print(f"P {population:2d} theta {theta:5.1f} A {margin:3.1f} bias rate 2^{np.log2(bias_rate):.0f} growth "
              f"{growth:.0f}: after {100 * curve[-1]:5.1f}%, drop after 200 {100 * drop:4.1f}, flips {flips:6d}, "
              f"curve {[round(100 * a) for a in curve]}", flush=True)


if __name__ == "__main__":
    main()
