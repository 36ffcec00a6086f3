"""Speed of the pure trainer: a batched sweep against one run, and train against plain optax.

(a) lazy_sweep over 5 alphas x 4 seeds (20 runs, stacked under jax.vmap, one compilation)
    against one lazykit.train run of the same task (TwoLayer tanh student of width 200, 40
    points in dimension 5, 400 steps, a record every 20, float64). Goal: ratio <= 3.
    The sweep is timed without kappa (a single train computes none), and with it.
(b) lazykit.train on an (apply_fn, params) CNN (200 images 8x8x1, two 3x3 convolutions by
    jax.lax.conv_general_dilated, 100 steps of gradient descent, float64, default
    measurements: a record every step; the empirical NTK change on 64 points at the last
    record, as for every function model) against a plain jitted optax loop of the same
    steps and dtype (a jitted step called 100 times). Goals: ratio <= 1.3 for the network
    alone (tangent=False), <= 2.5 with the tangent model. The last row leaves the NTK out
    (ntk_points=0), to show what it costs.

"compile + run" is the first call of a fresh function (compilation included); "steady" the
median of --reps further calls once compiled.

Usage:
    python benchmarks/trainer_speed.py [--reps 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _timing import median_seconds

import lazykit
from lazykit._dtypes import precision

ALPHAS = np.geomspace(10, 1000, 5)
SEEDS = (0, 1, 2, 3)


def sweep_task():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(4, 6))
    x = rng.normal(size=(40, 5)) / np.sqrt(5)
    h = np.maximum(x @ teacher[:, :5].T + teacher[:, 5], 0.0).mean(1)
    return x, (h - h.mean()) / h.std()


def sweep_rows(reps):
    """compile + run (a fresh model) and steady times of one run, the sweep and the sweep
    with kappa at every run (lazy_sweep's default)."""
    x, y = sweep_task()
    common = dict(steps=400, learning_rate=200.0, record_every=20, center=True, verbose=False)

    def student(width, alpha=1.0):
        return lazykit.TwoLayer(width, activation="tanh", alpha=alpha, symmetric=False)

    cases = {
        "single run": lambda width: lambda: lazykit.train(student(width, 10.0), x, y, **common),
        "sweep 5 x 4": lambda width: lambda: lazykit.lazy_sweep(
            student(width), x, y, alphas=ALPHAS, seeds=SEEDS, compute_laziness=False, **common),
        "sweep 5 x 4 with kappa": lambda width: lambda: lazykit.lazy_sweep(
            student(width), x, y, alphas=ALPHAS, seeds=SEEDS, **common),
    }
    # A new width is a new model: a fresh compilation for the "compile + run" column.
    first = {name: _seconds(make(200 + 2 * i)) for i, (name, make) in enumerate(cases.items())}
    steady = {name: median_seconds(make(200 + 2 * i), reps)
              for i, (name, make) in enumerate(cases.items())}
    return first, steady


def cnn(seed, channels=8):
    """A two-convolution network for (n, 8, 8, 1) images and its parameters (float64)."""
    rng = np.random.default_rng(seed)
    params = {"k1": rng.normal(size=(3, 3, 1, channels)) / 3.0, "b1": np.zeros(channels),
              "k2": rng.normal(size=(3, 3, channels, channels)) / np.sqrt(9 * channels),
              "b2": np.zeros(channels), "w": rng.normal(size=(16 * channels, 1)),
              "b": np.zeros(1)}

    def apply_fn(p, x):
        dims = ("NHWC", "HWIO", "NHWC")
        h = jax.lax.conv_general_dilated(x, p["k1"], (1, 1), "SAME", dimension_numbers=dims)
        h = jax.nn.relu(h + p["b1"])
        h = jax.lax.conv_general_dilated(h, p["k2"], (2, 2), "SAME", dimension_numbers=dims)
        h = jax.nn.relu(h + p["b2"]).reshape(x.shape[0], -1)
        return h @ p["w"] / np.sqrt(h.shape[1]) + p["b"]

    return apply_fn, params


def cnn_task():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8, 8, 1))
    y = np.tanh(x[:, 2:6, 2:6, 0].mean(axis=(1, 2)) * 3.0)
    return x, y


def optax_loop(apply_fn, params, x, y, steps, lr):
    """The plain loop a user writes: a jitted optax step, called ``steps`` times."""
    opt = optax.sgd(lr)

    @jax.jit
    def step(p, state):
        def loss(q):
            return 0.5 * jnp.mean((apply_fn(q, x)[:, 0] - y) ** 2)

        value, grads = jax.value_and_grad(loss)(p)
        updates, state = opt.update(grads, state, p)
        return optax.apply_updates(p, updates), state, value

    def run():
        with precision("float64"):
            p = jax.tree_util.tree_map(jnp.asarray, params)
            state = opt.init(p)
            for _ in range(steps):
                p, state, value = step(p, state)
            return jax.block_until_ready(value)

    return run


def cnn_rows(reps, steps=100, lr=0.5):
    x, y = cnn_task()
    # Fresh functions (new closures) for the "compile + run" column.
    apply_fn, params = cnn(0)
    first = {"optax loop": _seconds(optax_loop(apply_fn, params, x, y, steps, lr))}
    steady = {"optax loop": median_seconds(optax_loop(apply_fn, params, x, y, steps, lr), reps)}
    cases = (("train, network alone", dict(tangent=False)),
             ("train, with tangent", dict(tangent=True)),
             ("  alone, ntk_points=0", dict(tangent=False, ntk_points=0)))
    for name, kwargs in cases:
        apply_fn, params = cnn(0)

        def run(apply_fn=apply_fn, params=params, kwargs=kwargs):
            return lazykit.train((apply_fn, params), x, y, steps=steps, learning_rate=lr,
                                 verbose=False, **kwargs)

        first[name] = _seconds(run)
        steady[name] = median_seconds(run, reps)
    return first, steady


def warm_up():
    """Pay the one-time costs (imports, JAX's backend, first small compilations) before any
    timing, so that no case's "compile + run" carries them."""
    x, y = sweep_task()
    lazykit.train(lazykit.TwoLayer(8), x, y, steps=2, learning_rate=1.0, verbose=False)
    lazykit.lazy_sweep(lazykit.TwoLayer(8), x, y, alphas=[1.0, 2.0], seeds=[0, 1], steps=2,
                       learning_rate=1.0, verbose=False)
    apply_fn, params = cnn(0, channels=2)
    optax_loop(apply_fn, params, *cnn_task(), steps=2, lr=0.1)()
    lazykit.train((apply_fn, params), *cnn_task(), steps=2, learning_rate=0.1, verbose=False)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _table(title, first, steady, base):
    print(f"\n{title}")
    print(f"{'':24s} {'compile + run s':>16s} {'ratio':>7s} {'steady s':>10s} {'ratio':>7s}")
    for name in first:
        print(f"{name:24s} {first[name]:16.2f} {first[name] / first[base]:7.2f} "
              f"{steady[name]:10.3f} {steady[name] / steady[base]:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=("sweep", "cnn"), default=None)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"jax {jax.__version__}, optax {optax.__version__}, float64")
    warm_up()
    if args.only in (None, "sweep"):
        first, steady = sweep_rows(args.reps)
        _table("(a) lazy_sweep 5 alphas x 4 seeds vs one train run (goal <= 3x)", first,
               steady, "single run")
    if args.only in (None, "cnn"):
        first, steady = cnn_rows(args.reps)
        _table("(b) CNN, 200 x 8x8x1, 100 steps: train vs a jitted optax loop "
               "(goals <= 1.3x alone, <= 2.5x with tangent)", first, steady, "optax loop")


if __name__ == "__main__":
    main()
