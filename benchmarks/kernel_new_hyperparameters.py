"""Kernel time with a new W_std (and activation parameter) against the first call, same run.

    python benchmarks/kernel_new_hyperparameters.py [--n 1000] [--d 50] [--depth 3]

Network descriptions are pytrees whose hyperparameters are leaves, so
``Network.kernel`` compiles once per structure (layer types and widths). The
first call of a fresh process includes tracing and compilation; every later
network with new values of W_std, b_std or the activation's parameters reuses
the compiled program. Prints the first call, the median over new values, their
ratio, and the same for ``jax.jit`` of ``kernel_fn`` with the network as an
argument and for ``NeuralKernel`` at new W_std (a Gaussian-process optimizer's
inner loop). The number of compilations is read from the jitted function's cache.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import lazykit
from lazykit._dtypes import precision
from lazykit.kernels import compute


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(name: str, first: float, later: list[float]) -> None:
    median = float(np.median(later))
    print(f"{name:<34} first {first:8.3f} s   new values {median:8.4f} s   "
          f"ratio {first / median:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--depth", type=int, default=3)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(args.n, args.d))
    values = [(1.1, 0.1, 1.0), (1.3, 0.2, 0.8), (1.6, 0.05, 1.4), (2.0, 0.3, 0.6), (0.9, 0.0, 2.0)]

    def network(w, b, a):
        return lazykit.mlp(args.depth, activation=lazykit.Erf(a=a), W_std=w, b_std=b)

    print(f"n = {args.n}, d = {args.d}, depth-{args.depth} erf network, float64, "
          f"{jax.devices()[0].platform}")
    first = seconds(lambda: network(1.0, 0.1, 1.0).kernel(x))
    compiled = compute._from_moments._cache_size()
    later = [seconds(lambda v=v: network(*v).kernel(x)) for v in values]
    report("Network.kernel", first, later)
    print(f"{'':<34} compilations after the first call: "
          f"{compute._from_moments._cache_size() - compiled}")

    kernel_fn = jax.jit(lambda net, inputs: net.kernel_fn(inputs).ntk)
    with precision("float64"):
        xj = jnp.asarray(x)
        first = seconds(lambda: kernel_fn(network(1.0, 0.1, 1.0), xj).block_until_ready())
        later = [seconds(lambda v=v: kernel_fn(network(*v), xj).block_until_ready())
                 for v in values]
    report("jax.jit(kernel_fn), net argument", first, later)

    small = x[:300]
    first = seconds(lambda: lazykit.NeuralKernel(depth=args.depth, W_std=1.0)(small))
    later = [seconds(lambda v=v: lazykit.NeuralKernel(depth=args.depth, W_std=v[0])(small))
             for v in values]
    report("NeuralKernel (300 points)", first, later)


if __name__ == "__main__":
    main()
