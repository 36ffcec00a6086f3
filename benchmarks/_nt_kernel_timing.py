"""Time neural-tangents' kernel_fn (run by kernel_speed.py inside the pinned NT environment).

Prints one JSON object: {"float32": {depth: seconds}, "float64": {...}}.
"""

import argparse
import json
import time

import jax
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--depths", type=int, nargs="+", required=True)
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--w-std", type=float, required=True)
    parser.add_argument("--b-std", type=float, required=True)
    args = parser.parse_args()
    from jax.experimental import enable_x64
    from neural_tangents import stax

    x = np.random.default_rng(0).normal(size=(args.n, args.d))
    out = {}
    for dtype in ("float32", "float64"):
        out[dtype] = {}
        for depth in args.depths:
            layers = []
            for _ in range(depth):
                layers += [stax.Dense(512, args.w_std, args.b_std), stax.Relu()]
            _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, args.w_std, args.b_std))
            fn = jax.jit(kernel_fn, static_argnames="get")

            def run(xs, fn=fn):
                k = fn(xs, None, ("nngp", "ntk"))
                return [np.asarray(v) for v in k]

            ctx = enable_x64() if dtype == "float64" else _null()
            with ctx:
                xs = jax.numpy.asarray(x.astype(dtype))
                run(xs)
                times = []
                for _ in range(args.reps):
                    start = time.perf_counter()
                    run(xs)
                    times.append(time.perf_counter() - start)
            out[dtype][str(depth)] = float(np.median(times))
    print(json.dumps(out))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
