"""Cost of a tangent-model step against a network step in lazykit.train.

`lazykit.train` is timed over `--steps` steps (one record at the start and one at the end,
no empirical-NTK measurement) with the tangent model switched off (network step only) and on
(both), so tangent step = both - network. Times are medians of `--reps` runs after a warm-up
run that compiles the trainer's programs.

Usage:
    python benchmarks/tangent_step.py
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from _timing import median_seconds

import lazykit

CASES = [
    ("two-layer relu m=2048, n=500, d=100", lambda: lazykit.TwoLayer(2048, alpha=45.0), 500,
     100),
    ("mlp 3x1024 relu, n=256, d=100", lambda: lazykit.mlp(3, 1024, "relu"), 256, 100),
]


def step_seconds(model, n, d, *, batch_size, tangent, steps, reps, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    y = rng.normal(size=(n, 1))
    alpha = None if isinstance(model, lazykit.TwoLayer) else 10.0

    def run():
        lazykit.train(model, X, y, steps=steps, learning_rate=1e-3, batch_size=batch_size,
                      tangent=tangent, record_every=steps, ntk_points=0, alpha=alpha,
                      verbose=False, dtype=dtype)

    run()  # compile
    return median_seconds(run, reps) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"jax {jax.__version__}, {args.steps} steps per timing")
    print(f"{'case':38s} {'dtype':8s} {'mode':10s} {'network ms':>10s} {'both ms':>8s} "
          f"{'tangent ms':>10s} {'tangent/network':>15s}")
    for name, make, n, d in CASES:
        for dtype in args.dtypes:
            for mode, batch in (("GD", None), ("SGD b=64", 64)):
                kwargs = dict(batch_size=batch, steps=args.steps, reps=args.reps, dtype=dtype)
                net = step_seconds(make(), n, d, tangent=False, **kwargs)
                both = step_seconds(make(), n, d, tangent=True, **kwargs)
                tangent = max(both - net, 0.0)
                print(f"{name:38s} {dtype:8s} {mode:10s} {net * 1e3:10.2f} {both * 1e3:8.2f} "
                      f"{tangent * 1e3:10.2f} {tangent / net:15.2f}", flush=True)


if __name__ == "__main__":
    main()
