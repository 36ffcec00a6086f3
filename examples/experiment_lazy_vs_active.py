"""Lazy vs active training (Chizat & Bach 2019): test loss against the initialization scale.

Runs the quick setting (about 20 seconds on 2 CPU cores), prints the summary table
and the findings, and saves results.json, results.csv and the figures
(test_loss_vs_tau.png, neurons.png) into the folder given as first argument
(default: lazy_vs_active_quick). `lazykit run lazy_vs_active --full` is the
paper-sized run.
"""

import sys

import matplotlib

matplotlib.use("Agg")

from lazykit import experiments

out = sys.argv[1] if len(sys.argv) > 1 else "lazy_vs_active_quick"
result = experiments.run("lazy_vs_active", "quick", seed=0, progress=print)
print(result.summary_text())
for path in result.save(out):
    print("wrote", path)
