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
    stage("3. Compile to fixed point (bso profile) and check the NumPy simulator against the torch integer "
          "reference spike for spike on the digits test set, and the fixed-point network against the float one",
          ["parity", str(out / "model.nir"), "--backends", "sim,torch", "--dataset", "digits", "--samples", "450",
           "--time-steps", "4"])
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"\n=== Summary\ntest accuracy {metrics['test_accuracy']:.4f} after {metrics['completed_epochs']} "
          f"epochs ({metrics['train_seconds']:.1f} s of training, {time.perf_counter() - start:.1f} s in all)\n"
          f"files: {out / 'checkpoint.pt'}, {out / 'metrics.json'}, {out / 'training.png'}, {out / 'model.nir'}")


if __name__ == "__main__":
    main()
