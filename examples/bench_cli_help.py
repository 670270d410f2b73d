"""How long ``bso-deploy --help`` (and a command's ``--help``) takes, each in a fresh interpreter: the
median of 5 runs, beside the bare interpreter's start-up. Prints a table and writes bench/cli.json.

    .venv/bin/python examples/bench_cli_help.py [--repeats 5] [--out bench]

The parser imports no torch (tests/test_cli.py checks the modules); this measures what a user waits.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bso_deploy.io import atomic_write_json

COMMANDS = ((), ("train",), ("run",), ("learn",), ("bench", "deploy"))


def bso_deploy_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m bso_deploy.cli``."""
    script = Path(sys.executable).with_name("bso-deploy")
    if script.is_file():
        return [str(script)]
    found = shutil.which("bso-deploy")
    return [found] if found else [sys.executable, "-m", "bso_deploy.cli"]


def seconds(argv: list[str], repeats: int) -> list[float]:
    """Wall-clock seconds of ``argv`` run ``repeats`` times (each a fresh process, output discarded)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh-interpreter runs per command (default 5)")
    parser.add_argument("--out", default="bench", help="output directory (cli.json; default bench)")
    args = parser.parse_args()
    script = bso_deploy_command()
    rows = [{"command": "python -c pass", "seconds": seconds([sys.executable, "-c", "pass"], args.repeats)}]
    for command in COMMANDS:
        rows.append({"command": " ".join(["bso-deploy", *command, "--help"]),
                     "seconds": seconds([*script, *command, "--help"], args.repeats)})
    for row in rows:
        row["median_seconds"] = round(statistics.median(row["seconds"]), 4)
        row["seconds"] = [round(value, 4) for value in row["seconds"]]
        print(f"{row['command']:<36} median {row['median_seconds']:.3f} s")
    record = {"repeats": args.repeats, "python": platform.python_version(), "machine": platform.machine(),
              "rows": rows}
    print(f"wrote {atomic_write_json(Path(args.out) / 'cli.json', record)}")


if __name__ == "__main__":
    main()
