"""Lazy vs active training of a two-layer network, and the deviation against alpha.

Writes the figures of docs/lazy_training.md (into docs/lazy_training/ by default):

* trajectories.png: a mean-field run (alpha = 1, steps x width) and a lazy run
  (alpha = 100) of the same network from the same initialization, network vs tangent.
* neurons.png: the neuron paths |c_j| (w_j, b_j) of both runs (1-D inputs).
* sweeps.png: sup_t ||alpha f - alpha Tf|| and parameter movement against alpha, for a
  tanh student (slope -1) and a ReLU student (slope about -1/2), on a ReLU teacher task.

Run with `python examples/lazy_training.py [output_dir]` (about a minute on 2 CPU cores).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import lazykit


def teacher_task(seed, n, d):
    """Targets of a 4-neuron ReLU teacher on inputs of norm about 1, standardized (the task
    of tests/teacher.py)."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(4, d + 1))
    x = rng.normal(size=(n, d)) / np.sqrt(d)
    h = np.maximum(x @ teacher[:, :d].T + teacher[:, d], 0.0).mean(1)
    return x, (h - h.mean()) / h.std()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    x, y = teacher_task(0, n=30, d=1)
    width = 200
    model = lazykit.TwoLayer(width)
    params = model.init(0, input_dim=1, dtype="float64")
    runs = {}
    for alpha in (1.0, 100.0):
        runs[alpha] = lazykit.train(model.replace(alpha=alpha), x, y, steps=2000,
                                    learning_rate=float(width), params=params, record_every=20)
        kappa = lazykit.laziness(model.replace(alpha=alpha), params, x, y).kappa
        rec = runs[alpha]
        print(f"alpha={alpha:g}: kappa={kappa:.3f}, final loss {rec.train_loss[-1]:.2e} "
              f"(tangent {rec.tangent_train_loss[-1]:.2e}), sup deviation "
              f"{rec.sup_deviation():.3f}, movement {rec.param_movement[-1]:.3f}, "
              f"patterns changed {rec.pattern_change[-1]:.3f}")

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.8))
    for row, alpha in zip(axes, runs, strict=True):
        runs[alpha].plot(axes=row)
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=90)

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.4))
    for ax, alpha in zip(axes, runs, strict=True):
        runs[alpha].plot_neurons(ax=ax, dims=(0, -1))
    fig.tight_layout()
    fig.savefig(out / "neurons.png", dpi=90)

    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7.4))
    xs, ys = teacher_task(1000, n=40, d=5)
    # The configurations of tests/test_lazy.py: targets of rms 0.5 for the smooth student.
    for row, activation, m, rms in zip(axes, ("tanh", "relu"), (200, 1000), (0.5, 1.0),
                                        strict=True):
        sweep = lazykit.lazy_sweep(
            lazykit.TwoLayer(m, activation=activation, symmetric=False), xs, rms * ys,
            alphas=np.geomspace(10, 1000, 5), seeds=[0, 1, 2], steps=400, learning_rate=float(m),
            record_every=20, center=True, compute_laziness=False, ntk_points=0,
            record_neurons=False)
        sweep.plot(axes=row)
        row[0].set_title(f"{activation} student, width {m}, targets of rms {rms:g}")
        print(f"{activation}: deviation slope {sweep.deviation_slope.slope:.3f} "
              f"[{sweep.deviation_slope.ci_low:.3f}, {sweep.deviation_slope.ci_high:.3f}], "
              f"movement slope {sweep.movement_slope.slope:.3f}")
    fig.tight_layout()
    fig.savefig(out / "sweeps.png", dpi=90)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else
         Path(__file__).resolve().parent.parent / "docs" / "lazy_training")
