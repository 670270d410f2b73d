"""Offline study of the readout error's shape for the shared-counter rule (docs/onchip-learning.md §20, §21):
the counter rule of examples/counter_rule_study.py in float units on the chip's hidden spikes, with the error
e_k of §5's clipped margin replaced by

    margin   e_k = clip(y_k, -A, A) - target_k                    (§5, the reference)
    hinge    r = argmax_(k != l) y_k; if y_l - y_r < A: e_l = -A, e_r = +A, else 0   (multi-class perceptron)
    topk     the K = 2 strongest classes: each wrong one among them with y_k > y_l - A gets +1, the label -1
             per such class (a winner-take-all error)
    pairwise e_k = sig(y_k - y_l) for k != l, e_l = -sum_k e_k,  sig(d) = clip((d + A) / (2 A), 0, 1)
             (a piecewise-linear sigmoid: the integer softmax-like error)

on y = the class output of the step (the current) or of the window so far (the voltage), and several passes
over the same 1000 stream samples with the threshold growing along all of them.

    .venv/bin/python examples/error_shape_study.py [--scenario invert|class-incremental] [--passes N]

Prints one row per setting: accuracy after the stream (class-incremental: new classes, old classes), the
largest fall after 200 samples, flips, the curve every 100 samples (of all passes).
"""

from __future__ import annotations

import argparse
import itertools
import os

import numpy as np
from counter_rule_study import SCENARIOS, chip_spikes, counter_update

from bso_deploy.experiments.adaptation_config import AdaptationConfig

SHAPES = ("margin", "hinge", "topk", "pairwise")


def class_error(shape: str, y: np.ndarray, label: int, margin: float) -> np.ndarray:
    """The error of one step (module docstring) for class outputs ``y`` (C,) in float units."""
    classes = y.shape[0]
    if shape == "margin":
        target = np.full(classes, -margin)
        target[label] = margin
        return np.clip(y, -margin, margin) - target
    error = np.zeros(classes)
    others = np.delete(np.arange(classes), label)
    if shape == "hinge":
        rival = others[np.argmax(y[others])]
        if y[label] - y[rival] < margin:
            error[label], error[rival] = -margin, margin
        return error
    if shape == "topk":
        order = others[np.argsort(-y[others], kind="stable")][:2]
        for rival in order:
            if y[rival] > y[label] - margin:
                error[rival] += 1.0
                error[label] -= 1.0
        return error
    sig = np.clip((y[others] - y[label] + margin) / (2 * margin), 0.0, 1.0)
    error[others] = sig
    error[label] = -sig.sum()
    return error


def emulate(data: dict[str, np.ndarray], shape: str, use_voltage: bool, population: int, theta: float,
            margin: float, bias_rate: float, growth: float, passes: int, pretrain_classes: int):
    """The counter rule (examples/counter_rule_study.py) with the error ``shape``: (curve of (new, old) test
    accuracies every 100 samples, flips)."""
    stream, labels, test, test_y = data["stream"].astype(float), data["stream_y"], data["test"].sum(0), data["test_y"]
    steps, samples, n_in = stream.shape
    classes = data["weight"].shape[0]
    weight = population * data["weight"].astype(np.int64)
    accumulator, bias = np.zeros((classes, n_in)), np.zeros(classes)
    new, old = test_y >= pretrain_classes, test_y < pretrain_classes

    def accuracy() -> tuple[float, float]:
        right = np.argmax(test @ (weight / population).T + steps * bias, axis=1) == test_y
        return float(np.mean(right[new])), float(np.mean(right[old])) if old.any() else 0.0

    curve, flips, total = [accuracy()], 0, samples * passes
    for n in range(total):
        sample, trace, v = n % samples, np.zeros(n_in), np.zeros(classes)
        limit = theta * (1 + growth * n / 1000 / passes)
        for t in range(steps):
            trace = 0.5 * trace + stream[t, sample]
            current = (weight / population) @ stream[t, sample] + bias
            v = v + current
            error = class_error(shape, v if use_voltage else current, labels[sample], margin)
            bias -= bias_rate * error
            weight, accumulator, moved = counter_update(weight, accumulator, np.outer(error, trace), limit,
                                                        population)
            flips += moved
        if (n + 1) % 100 == 0:
            curve.append(accuracy())
    return curve, flips


def cached_spikes(config: AdaptationConfig, name: str) -> dict[str, np.ndarray]:
    """chip_spikes, kept in /tmp between runs of the study (the pretraining is the slow part)."""
    path = f"/tmp/error_shape_study_{name}.npz"
    if os.path.exists(path):
        with np.load(path) as stored:
            return dict(stored)
    data = chip_spikes(config)
    np.savez(path + ".part.npz", **data)
    os.replace(path + ".part.npz", path)
    return data


GRID = list(itertools.product(SHAPES, (False, True), (8,), (2.0, 8.0), (0.5, 1.0, 2.0, 4.0),
                              (2 ** -7,), (4.0,)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="invert")
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--thetas", default="2,8")
    parser.add_argument("--margins", default="0.5,1,2,4")
    parser.add_argument("--growths", default="4")
    parser.add_argument("--bias-rates", default="-7")
    parser.add_argument("--voltage", default="0,1")
    args = parser.parse_args()
    config = AdaptationConfig(**SCENARIOS[args.scenario])
    data = cached_spikes(config, args.scenario)
    grid = itertools.product(args.shapes.split(","), [bool(int(v)) for v in args.voltage.split(",")], (8,),
                             [float(v) for v in args.thetas.split(",")], [float(v) for v in args.margins.split(",")],
                             [2.0 ** int(v) for v in args.bias_rates.split(",")],
                             [float(v) for v in args.growths.split(",")])
    for shape, use_voltage, population, theta, margin, bias_rate, growth in grid:
        if shape == "margin" and use_voltage:
            continue
        curve, flips = emulate(data, shape, use_voltage, population, theta, margin, bias_rate, growth,
                               args.passes, config.pretrain_classes)
        new = [c[0] for c in curve]
        later = new[2:]
        drop = max(later[i] - min(later[i:]) for i in range(len(later)))
        print(f"{shape:8s} {'v' if use_voltage else 'c'} P {population} theta {theta:4.1f} A {margin:3.1f} "
              f"bias 2^{np.log2(bias_rate):.0f} growth {growth:.0f} passes {args.passes}: after "
              f"{100 * new[-1]:5.1f}% old {100 * curve[-1][1]:5.1f}% (before {100 * curve[0][1]:5.1f}%), drop "
              f"{100 * drop:4.1f}, flips {flips:6d}, curve {[round(100 * a) for a in new]}", flush=True)


if __name__ == "__main__":
    main()
