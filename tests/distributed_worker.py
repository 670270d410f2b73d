"""Run by tests/test_distributed.py under torchrun: the `bso-deploy train` code path, then each rank dumps
its binary weights, optimizer state and full-precision parameters for comparison."""

import sys
from pathlib import Path

import torch

from bso_deploy.cli import build_parser
from bso_deploy.commands.train import train_from_args


def main() -> None:
    dump_dir = Path(sys.argv[1])
    args = build_parser().parse_args(sys.argv[2:])
    run = train_from_args(args)
    state = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    for name, optimizer in (("binary", run.optimizers.binary), ("fp", run.optimizers.full_precision)):
        for index, p in enumerate(optimizer.param_groups[0]["params"]):
            for key, value in optimizer.state[p].items():
                state[f"{name}.{index}.{key}"] = value
    rank = int(__import__("os").environ["RANK"])
    torch.save(state, dump_dir / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
