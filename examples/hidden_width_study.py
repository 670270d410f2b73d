"""How much a readout can learn on the class-incremental scenario's hidden layer (docs/onchip-learning.md §22).

Pretrains the scenario's network (``AdaptationConfig(shift="none", pretrain_classes=5)``: classes 0 - 4 only)
for each hidden width, time steps and pretraining epochs given, deploys it as ``bso-deploy learn`` does, and fits
a float multinomial logistic regression (scikit-learn, inverse regularization C) on the chip's hidden spike
counts of the 1000 stream samples; prints its test accuracy on all, the new (5 - 9) and the old (0 - 4) classes.
This is an upper bound of what any readout learner (the learnable parameters: weights and biases of the
readout) reaches on that hidden layer. Example::

    .venv/bin/python examples/hidden_width_study.py --widths 256,512,1024 --time-steps 4,8 --epochs 5
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from bso_deploy.export.nir import to_nir
from bso_deploy.hardware.quantize import quantize_inputs
from sklearn.linear_model import LogisticRegression

from bso_deploy.experiments import adaptation as scenario
from bso_deploy.experiments.adaptation_config import AdaptationConfig
from bso_deploy.experiments.adaptation_reference import readout_counts

PRETRAIN_CLASSES = 5


def readout_bound(width: int, time_steps: int, epochs: int, dataset: str, c_values: tuple[float, ...]) -> None:
    config = AdaptationConfig(dataset=dataset, shift="none", pretrain_classes=PRETRAIN_CLASSES, hidden=(width,),
                              time_steps=time_steps, train_epochs=epochs)
    model, split = scenario._pretrain(config, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fx_net = scenario.compile_deployed(to_nir(model), time_steps)
    train_x, train_y = scenario._arrays(split.train)
    test_x, test_y = scenario._arrays(split.test)
    order = scenario._stream(config, len(train_x))
    counts = [readout_counts(fx_net, scenario._steps(quantize_inputs(fx_net, x), time_steps), time_steps)
              for x in (train_x[order], test_x)]
    scale = max(float(counts[0].max()), 1.0)
    new = test_y >= PRETRAIN_CLASSES
    rate = counts[0].mean() / time_steps
    for c in c_values:
        predictions = LogisticRegression(C=c, max_iter=2000).fit(counts[0] / scale, train_y[order]).predict(
            counts[1] / scale)
        print(f"{dataset} hidden {width} T {time_steps} epochs {epochs} (spike rate {rate:.4f}) C {c:g}: all "
              f"{np.mean(predictions == test_y):.3f} new {np.mean(predictions[new] == test_y[new]):.3f} old "
              f"{np.mean(predictions[~new] == test_y[~new]):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="256,512")
    parser.add_argument("--time-steps", default="4")
    parser.add_argument("--epochs", default="5")
    parser.add_argument("--c", default="0.1,1,10", help="inverse regularization strengths of the regression")
    parser.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    ints = lambda text: [int(item) for item in text.split(",")]  # noqa: E731
    for width in ints(args.widths):
        for time_steps in ints(args.time_steps):
            for epochs in ints(args.epochs):
                readout_bound(width, time_steps, epochs, args.dataset, tuple(float(c) for c in args.c.split(",")))


if __name__ == "__main__":
    main()
