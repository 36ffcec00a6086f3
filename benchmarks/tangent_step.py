"""Cost of a tangent-model step against a network step in lazykit.train.

The trainer runs both models in one jitted lax.scan; this script times that scan over
`--steps` steps with the tangent model switched off (network step only) and on (both), so
tangent step = both - network. Full-batch gradient descent linearizes once per chunk
(jax.linearize) and then applies the stored linear map; SGD runs one jvp per batch
(forward + tangent) and its transpose. Times are medians of `--reps` runs after a warm-up.

Usage:
    python benchmarks/tangent_step.py
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_seconds

import lazykit
from lazykit._dtypes import precision
from lazykit._problem import make_problem
from lazykit.training import _batch_indices, _chunk_runner, _outputs, default_optimizer

CASES = [
    ("two-layer relu m=2048, n=500, d=100", lambda: lazykit.TwoLayer(2048, alpha=45.0), 500,
     100),
    ("mlp 3x1024 relu, n=256, d=100", lambda: lazykit.mlp(3, 1024, "relu"), 256, 100),
]




def step_seconds(model, n, d, *, batch_size, tangent, steps, reps, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    y = rng.normal(size=(n, 1))
    with precision(dtype):
        problem = make_problem(model, d, alpha=None if isinstance(model, lazykit.TwoLayer)
                               else 10.0, seed=0, dtype=np.dtype(dtype))
        w0 = problem.params0
        x, yj = jnp.asarray(X, dtype), jnp.asarray(y, dtype)
        out0 = _outputs(problem.key)(w0, x)
        sgd = default_optimizer()
        state = sgd.init(w0)
        state.hyperparams["learning_rate"] = jnp.asarray(1e-3, dtype)
        carry = (w0, w0, state, state)
        runner = _chunk_runner(problem.key, "mse", sgd, problem.center, tangent,
                               batch_size is not None)
        batches = _batch_indices(n, steps, batch_size, 0)
        alpha = jnp.asarray(problem.alpha, dtype)

        def run():
            jax.block_until_ready(runner(carry, w0, out0, x, yj, alpha, batches))

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
