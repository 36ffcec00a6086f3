"""Run the implicit_bias experiment (quick setting), print its summary and save its figures.

Usage: `python examples/experiment_implicit_bias.py [output_dir]` (default: ./implicit_bias;
under a minute on 2 CPU cores). `lazykit run implicit_bias --full --out DIR` runs the
paper-sized setting.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from lazykit import experiments


def main(out: Path) -> None:
    result = experiments.run("implicit_bias", "quick", seed=0, progress=print)
    print(result.summary_text())
    for path in result.save(out):
        print("wrote", path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("implicit_bias"))
