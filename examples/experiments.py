"""Run experiments from Python (quick setting): print each summary and save its figures.

Usage: `python examples/experiments.py [NAME ...] [--out DIR] [--force]` (default: every
experiment of `lazykit list`, into ./results/NAME; each takes a minute or two on 2 CPU cores).
Each folder is written atomically and a previous output is replaced only with --force. The command
`lazykit run NAME [--quick | --full] --out DIR` does the same for one experiment.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from lazykit import experiments
from lazykit.experiments.output import write_output_folder
from lazykit.experiments.registry import EXPERIMENTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="experiments (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--force", action="store_true", help="replace previous outputs")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; choose from {sorted(EXPERIMENTS)}.")
    for name in args.names or sorted(EXPERIMENTS):
        result = experiments.run(name, "quick", seed=0, progress=print)
        print(result.summary_text())
        for path in write_output_folder(args.out / name, result.save, force=args.force):
            print("wrote", path)


if __name__ == "__main__":
    main()
