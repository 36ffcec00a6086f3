"""Mean-field global convergence (Chizat & Bach 2018): population loss against width,
gradient-descent-trained two-layer nets next to random features of the same width.

Runs the quick setting (about 40 seconds on 2 CPU cores), prints the summary table
and the findings, and saves results.json, results.csv and the figures
(loss_vs_width.png, learning_curves.png) into the folder given as first argument
(default: mean_field_convergence_quick).
"""

import sys

import matplotlib

matplotlib.use("Agg")

from lazykit import experiments

out = sys.argv[1] if len(sys.argv) > 1 else "mean_field_convergence_quick"
result = experiments.run("mean_field_convergence", "quick", seed=0, progress=print)
print(result.summary_text())
for path in result.save(out):
    print("wrote", path)
