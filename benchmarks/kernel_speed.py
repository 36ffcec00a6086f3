"""Infinite-width kernel speed: lazykit against neural-tangents and the X X^T floor.

NNGP + NTK of a ReLU MLP (NTK parameterization), inputs (n, d) ~ N(0, 1), in
float32 and float64, at several depths. neural-tangents runs in its pinned
environment as a subprocess (`--nt-python`); lazykit, NumPy's and XLA's
matmul run in this process. "lazykit ms" is `Network.kernel` (NumPy results
on the host, transfers included); "on-device" is the jitted `Network.kernel_fn`
with results left on the device. Each time is the median of `--reps` runs after one
warm-up run (which includes compilation). Accuracy is the largest entrywise
error relative to the largest entry, against the plain formula (NumPy arccos,
float64).

Usage:
    python benchmarks/kernel_speed.py --nt-python .venv-nt/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_seconds

import lazykit
from lazykit._dtypes import precision

W_STD, B_STD = 1.3, 0.2




def plain_relu_kernel(rows: np.ndarray, x: np.ndarray, depth: int):
    """The textbook recursion with NumPy's arccos in extended precision (np.longdouble),
    between ``rows`` and all of ``x``: the accuracy reference."""
    rows, x = rows.astype(np.longdouble), x.astype(np.longdouble)
    w2, b2 = np.longdouble(W_STD) ** 2, np.longdouble(B_STD) ** 2
    k = w2 * np.dot(rows, x.T) / x.shape[1] + b2
    k1 = w2 * np.sum(rows * rows, 1) / x.shape[1] + b2
    k2 = w2 * np.sum(x * x, 1) / x.shape[1] + b2
    ntk = k.copy()
    for _ in range(depth):
        norms = np.sqrt(np.outer(k1, k2))
        rho = np.clip(k / norms, -1.0, 1.0)
        diagonal = np.arange(rows.shape[0])
        rho[diagonal, diagonal] = 1.0  # rows are the first rows of x: exactly correlated
        theta = np.arccos(rho)
        k = w2 * norms * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi) + b2
        ntk = k + w2 * (np.pi - theta) / (2 * np.pi) * ntk
        k1, k2 = w2 * k1 / 2 + b2, w2 * k2 / 2 + b2
    return k, ntk


def relative_error(got, reference) -> float:
    error = np.abs(np.asarray(got, np.longdouble) - reference).max() / np.abs(reference).max()
    return float(error)


def neural_tangents_times(python: str, args) -> dict | None:
    if not python or not os.path.exists(python):
        return None
    script = os.path.join(os.path.dirname(__file__), "_nt_kernel_timing.py")
    cmd = [python, script, "--n", str(args.n), "--d", str(args.d), "--reps", str(args.reps),
           "--w-std", str(W_STD), "--b-std", str(B_STD), "--depths", *map(str, args.depths)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=784)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--accuracy-rows", type=int, default=128,
                        help="rows compared with the extended-precision reference (0 skips)")
    parser.add_argument("--nt-python", default=".venv-nt/bin/python",
                        help="python of the neural-tangents environment ('' to skip)")
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(args.n, args.d))
    nt = neural_tangents_times(args.nt_python, args)
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}),"
          f" jax {jax.__version__}, n={args.n}, d={args.d}, ReLU, W_std={W_STD}, b_std={B_STD}")
    rows = args.accuracy_rows
    references = {depth: plain_relu_kernel(x[:rows], x, depth)
                  for depth in (args.depths if rows else ())}
    header = (f"{'dtype':8s} {'depth':>5s} {'lazykit ms':>10s} {'on-device':>9s} {'NT ms':>8s} "
              f"{'NT/lazykit':>10s} "
              f"{'XX^T numpy':>10s} {'XX^T xla':>9s} {'lk/numpy':>8s} {'lk/xla':>7s} "
              f"{'max rel err':>11s}")
    print(header)
    for dtype in ("float32", "float64"):
        xs = x.astype(dtype)
        floor_numpy = median_seconds(lambda xs=xs: xs @ xs.T, min(args.reps, 3))
        with precision(dtype):
            xj = jnp.asarray(xs)
            gram = jax.jit(lambda a: a @ a.T)
            floor_xla = median_seconds(lambda g=gram, a=xj: g(a).block_until_ready(), args.reps)
        for depth in args.depths:
            net = lazykit.mlp(depth, 512, "relu", W_std=W_STD, b_std=B_STD)
            seconds = median_seconds(lambda net=net, xs=xs, t=dtype: net.kernel(xs, dtype=t),
                                     args.reps)
            with precision(dtype):
                on_device = jax.jit(net.kernel_fn)
                device_seconds = median_seconds(
                    lambda f=on_device, a=xj: jax.block_until_ready(f(a)), args.reps)
            error = float("nan")
            if rows:
                k = net.kernel(xs, dtype=dtype)
                error = max(relative_error(k.nngp[:rows], references[depth][0]),
                            relative_error(k.ntk[:rows], references[depth][1]))
            nt_seconds = nt[dtype][str(depth)] if nt else float("nan")
            print(f"{dtype:8s} {depth:5d} {seconds * 1e3:10.1f} {device_seconds * 1e3:9.1f} "
                  f"{nt_seconds * 1e3:8.1f} "
                  f"{nt_seconds / seconds:10.2f} {floor_numpy * 1e3:10.1f} {floor_xla * 1e3:9.1f} "
                  f"{seconds / floor_numpy:8.2f} {seconds / floor_xla:7.2f} {error:11.1e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
