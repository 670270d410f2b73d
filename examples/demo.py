"""The main job on the built-in data set: train a binary SNN with T-BSO on handwritten digits.

Run with ``make demo`` (or ``.venv/bin/python examples/demo.py --out runs/demo``). Every stage is a
``bso-deploy`` command, printed before it runs, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from bso_deploy.cli import main as bso_deploy

# bench learn's P8+bias+counter+hinge (bso_deploy/bench/learn_table.py) as `learn` flags
LEARNER_FLAGS = ["--population", "8", "--learn-bias", "--population-rule", "counter", "--error-shape", "hinge",
                 "--error-target", "1", "--bias-shift", "7", "--counter-threshold", "2", "--counter-growth-shift",
                 "11", "--passes", "5"]


def stage(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}\n$ bso-deploy {shlex.join(argv)}", flush=True)
    code = bso_deploy(argv)
    if code != 0:
        sys.exit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    stage("1. Train a binary SNN online with T-BSO on scikit-learn's 8x8 digits",
          ["train", "--dataset", "digits", "--method", "tbso", "--time-steps", "4",
           "--epochs", str(args.epochs), "--seed", "0", "--out", str(out)])
    stage("2. Export the trained network to NIR (the interchange format the hardware side consumes)",
          ["export", str(out / "checkpoint.pt"), "--format", "nir", "--out", str(out / "model.nir")])
    stage("3. Compile to fixed point (bso profile), deploy it to Lava as bso-deploy's own processes (1-bit synapses, "
          "fixed_pt neurons), and check the NumPy simulator, the torch integer reference and Lava against each other "
          "spike for spike on the digits test set; the fixed-point network is also compared with the float one",
          ["parity", str(out / "model.nir"), "--backends", "sim,torch,lava", "--dataset", "digits", "--samples",
           "450", "--time-steps", "4"])
    stage("4. Export one time step as ONNX with explicit state (exact fixed-point semantics, any runtime can step it)",
          ["export", str(out / "checkpoint.pt"), "--format", "onnx", "--semantics", "fixed", "--out",
           str(out / "model.onnx")])
    stage("5. On-chip learning: a digits network with a binary readout is deployed, its inputs are inverted, and the "
          "integer T-BSO rule adapts the readout on the (emulated) chip: 8 binary neurons per class on shared "
          "counters, a learned bias, the hinge error, 5 passes over a short stream (docs/onchip-learning.md "
          "§20, §21; `bench learn`'s learner P8+bias+counter+hinge); the reference is a float logistic regression "
          "on the same spike counts",
          ["learn", "--train-epochs", "3", "--samples", "400", "--hidden", "128", *LEARNER_FLAGS,
           "--out", str(out / "learn")])
    metrics = json.loads((out / "metrics.json").read_text())
    learned = json.loads((out / "learn" / "learn.json").read_text())
    print(f"\n=== Summary\ntest accuracy {metrics['test_accuracy']:.4f} after {metrics['completed_epochs']} "
          f"epochs ({metrics['train_seconds']:.1f} s of training, {time.perf_counter() - start:.1f} s in all)\n"
          f"on-chip adaptation: {learned['accuracy_before']:.3f} -> {learned['accuracy_after']:.3f} (offline float "
          f"reference {learned['reference_accuracy']:.3f}), {learned['bits_per_synapse']} bits per synapse\n"
          f"files: {out / 'checkpoint.pt'}, {out / 'metrics.json'}, {out / 'training.png'}, {out / 'model.nir'}, "
          f"{out / 'model.onnx'}, {out / 'learn' / 'learn.png'}")


if __name__ == "__main__":
    main()
