"""Run the regimes experiment (quick setting), print its summary and save its figures.

Usage: `python examples/experiment_regimes.py [output_dir]` (default: ./regimes; under a minute
on 2 CPU cores). `lazykit run regimes --full --out DIR` runs the paper-sized setting.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from lazykit import experiments


def main(out: Path) -> None:
    result = experiments.run("regimes", "quick", seed=0, progress=print)
    print(result.summary_text())
    for path in result.save(out):
        print("wrote", path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("regimes"))
