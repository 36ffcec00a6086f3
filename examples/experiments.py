"""Run experiments from Python (quick setting): print each summary and save its figures.

Usage: `python examples/experiments.py [NAME ...] [--out DIR]` (default: every experiment of
`lazykit list`, into ./results/NAME; each takes under a minute on 2 CPU cores). The command
`lazykit run NAME [--quick | --full] --out DIR` does the same for one experiment.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from lazykit import experiments
from lazykit.experiments.registry import EXPERIMENTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="experiments (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; choose from {sorted(EXPERIMENTS)}.")
    for name in args.names or sorted(EXPERIMENTS):
        result = experiments.run(name, "quick", seed=0, progress=print)
        print(result.summary_text())
        for path in result.save(args.out / name):
            print("wrote", path)


if __name__ == "__main__":
    main()
