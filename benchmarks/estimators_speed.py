"""Speed of lazykit's estimators next to their peers, in one run, with ratios.

1. Fit + predict on a given Gram matrix (n = 8000 training, 1000 test points):
   ``NTKRegressor(network="precomputed")`` vs scikit-learn's
   ``KernelRidge(kernel="precomputed")``, same ridge, same matrices, runs
   interleaved, medians of ``--repeats``.
2. End to end at n = 4000 (kernel + fit + predictions at 10 training times on
   1000 test points): ``NTKRegressor(net, t=...)`` then
   ``predict(X_test, t=times)`` vs neural-tangents
   ``predict.gradient_descent_mse_ensemble(kernel_fn, ...)`` then
   ``predict_fn(t=times, x_test=..., get="ntk")``, for the same network
   (``lazykit.interop.to_neural_tangents``). Each side runs in a fresh
   subprocess (neural-tangents in its pinned environment, ``--nt-python``),
   twice: "cold" (first call, JIT compilation included) and "warm".
   neural-tangents is timed in its default float32 and in float64
   (``JAX_ENABLE_X64=1``); lazykit computes in float64.

Run (from the repository root):
    python benchmarks/estimators_speed.py --nt-python .venv-nt/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIMES = np.logspace(-1, 3, 10)


def _network():
    import lazykit

    return lazykit.mlp(2, 512, "relu", W_std=2**0.5, b_std=0.1)


def _data(n: int, n_test: int, d: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, d))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=n + n_test)
    return x[:n], y[:n], x[n:]


def gram_benchmark(n: int, n_test: int, repeats: int, ridge: float) -> dict:
    """Median seconds of KernelRidge vs NTKRegressor on the same precomputed Gram matrices."""
    from sklearn.kernel_ridge import KernelRidge

    import lazykit

    x, y, xt = _data(n, n_test)
    net = _network()
    gram, cross = net.kernel(x).ntk, net.kernel(xt, x).ntk
    times = {"sklearn KernelRidge": [], "lazykit NTKRegressor": []}
    predictions = {}
    for _ in range(repeats):
        for name in times:
            model = (KernelRidge(alpha=ridge, kernel="precomputed") if name.startswith("sklearn")
                     else lazykit.NTKRegressor("precomputed", ridge=ridge))
            start = time.perf_counter()
            predictions[name] = model.fit(gram, y).predict(cross)
            times[name].append(time.perf_counter() - start)
    a, b = predictions.values()
    return {"n": n, "n_test": n_test, "ridge": ridge,
            "seconds": {name: float(np.median(t)) for name, t in times.items()},
            "all_seconds": times,
            "max_relative_difference": float(np.abs(a - b).max() / np.abs(a).max())}


def worker_lazykit(data_path: str) -> dict:
    import lazykit

    data = np.load(data_path)
    result = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        model = lazykit.NTKRegressor(_network(), t=float(TIMES[-1])).fit(data["x"], data["y"])
        mean = model.predict(data["xt"], t=TIMES)
        result[run] = time.perf_counter() - start
    result["solver"] = model.solver_
    np.save(data_path + ".lazykit.npy", mean)
    return result


def worker_nt(data_path: str) -> dict:
    import neural_tangents as nt

    from lazykit.interop.neural_tangents import to_neural_tangents

    data = np.load(data_path)
    dtype = np.float64 if os.environ.get("JAX_ENABLE_X64") else np.float32
    x, y, xt = (data[k].astype(dtype) for k in ("x", "y", "xt"))
    _, _, kernel_fn = to_neural_tangents(_network())
    result = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x, y[:, None])
        mean = np.asarray(predict_fn(t=TIMES, x_test=xt, get="ntk"))
        result[run] = time.perf_counter() - start
    result["dtype"] = np.dtype(dtype).name
    result["nan"] = int(np.isnan(mean).sum())
    np.save(data_path + f".nt-{result['dtype']}.npy", mean[..., 0])
    return result


def _run_worker(python: str, which: str, data_path: str, extra_env=None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    out = subprocess.run([python, __file__, "--worker", which, "--data", data_path], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{which} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end_benchmark(n: int, n_test: int, nt_python: str | None) -> dict:
    x, y, xt = _data(n, n_test, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x=x, y=y, xt=xt)
        results = {"lazykit float64": _run_worker(sys.executable, "lazykit", path)}
        reference = np.load(path + ".lazykit.npy")
        if nt_python:
            for name, env in [("neural-tangents float32", {}),
                              ("neural-tangents float64", {"JAX_ENABLE_X64": "1"})]:
                results[name] = _run_worker(nt_python, "nt", path, env)
                nt_mean = np.load(path + f".nt-{results[name]['dtype']}.npy")
                results[name]["max_relative_difference"] = float(
                    np.nanmax(np.abs(nt_mean - reference)) / np.abs(reference).max())
    return {"n": n, "n_test": n_test, "times": TIMES.tolist(), "runs": results}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nt-python", default=None,
                        help="python of the neural-tangents environment (omit to skip)")
    parser.add_argument("--n-gram", type=int, default=8000)
    parser.add_argument("--n-end-to-end", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ridge", type=float, default=1e-3)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--worker", choices=["lazykit", "nt"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        fn = worker_lazykit if args.worker == "lazykit" else worker_nt
        print(json.dumps(fn(args.data)))
        return

    gram = gram_benchmark(args.n_gram, args.n_test, args.repeats, args.ridge)
    seconds = gram["seconds"]
    base = seconds["sklearn KernelRidge"]
    print(f"1. fit + predict on a precomputed NTK Gram matrix, n={gram['n']}, "
          f"{gram['n_test']} test points, ridge={gram['ridge']:g} (median of {args.repeats})")
    for name, value in seconds.items():
        print(f"   {name:26s} {value:7.2f} s   ratio to KernelRidge {value / base:5.2f}")
    print(f"   predictions agree to {gram['max_relative_difference']:.1e} (relative)")

    e2e = end_to_end_benchmark(args.n_end_to_end, args.n_test, args.nt_python)
    print(f"\n2. end to end: kernel + fit + predictions at {len(TIMES)} times, "
          f"n={e2e['n']}, {e2e['n_test']} test points (fresh process each)")
    mine = e2e["runs"]["lazykit float64"]
    for name, run in e2e["runs"].items():
        ratio = "" if name.startswith("lazykit") else (
            f"   lazykit faster by {run['cold'] / mine['cold']:.2f}x cold, "
            f"{run['warm'] / mine['warm']:.2f}x warm; max rel. diff "
            f"{run['max_relative_difference']:.1e}, NaN {run['nan']}")
        print(f"   {name:26s} cold {run['cold']:6.2f} s  warm {run['warm']:6.2f} s{ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps({"gram": gram, "end_to_end": e2e}, indent=2))


if __name__ == "__main__":
    main()
