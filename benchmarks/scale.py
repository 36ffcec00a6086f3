"""Kernel regression from 10^3 to 10^6 training points: time and peak memory of each solver.

Synthetic data, d = 784: inputs x = tanh(z A) near a 4-dimensional manifold
(z ~ N(0, I_4), A ~ N(0, 1/4) of shape (4, 784)), targets
y = sin(z_1) + z_2 z_3 / 2 + 0.1 noise; 2000 test points from the same law.
ReLU NTK of depth 2 (W_std sqrt(2), b_std 0.1), ridge 1, float64 throughout.

Each (n, method) runs in a fresh subprocess, one after the other (one heavy
process at a time); its peak memory is the peak resident set of that process
(VmHWM in /proc/self/status), data and JAX included. Methods:

- ``auto``: ``NTKRegressor(solver="auto")``, which picks by memory (``solver_`` is recorded);
- ``cholesky``, ``nystrom`` (M centres), ``cg`` (matrix-free, Nystrom-preconditioned):
  ``NTKRegressor(solver=...)``;
- ``sklearn``: scikit-learn ``KernelRidge(kernel="precomputed")`` on lazykit's
  NTK matrices (the kernel computation is included in its time).

Run (from the repository root), for instance:
    python benchmarks/scale.py --plan "1000:cholesky,sklearn,nystrom,cg" \\
        "100000:auto" "1000000:auto" --out docs/scale

A plan entry is ``n:method,method,...``; ``nystrom@8000`` sets M for one run;
``--centers rpcholesky`` picks the Nystrom centres (and CG's preconditioner's)
by randomly pivoted Cholesky instead of uniformly. ``--flow-time S`` fits the
ridgeless gradient flow at the finite scaled time S (t = S n, learning rate 1)
instead of ridge 1 at infinite time: ``eigh`` is then the exact reference,
``cg`` runs the Lanczos flow, ``nystrom`` the flow with the Nystrom kernel.
Results are appended to <out>/scale.json as they come; <out>/scale.png plots
fit + predict time and peak memory against n, one line per method.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D, LATENT, N_TEST, RIDGE = 784, 4, 2000, 1.0


def make_data(n: int, seed: int, chunk: int = 50_000):
    """(x (n, 784) float64, y (n,)), generated in chunks so that no temporary is n x 784."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(12345).normal(size=(LATENT, D)) / np.sqrt(LATENT)
    z = rng.normal(size=(n, LATENT))
    x = np.empty((n, D))
    for start in range(0, n, chunk):
        np.tanh(z[start:start + chunk] @ mixing, out=x[start:start + chunk])
    y = np.sin(z[:, 0]) + 0.5 * z[:, 1] * z[:, 2] + 0.1 * rng.normal(size=n)
    return x, y


def peak_rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 2**30
    return float("nan")


def _sklearn(x, y, x_test):
    from sklearn.kernel_ridge import KernelRidge

    import lazykit

    net = lazykit.mlp(2)
    start = time.perf_counter()
    model = KernelRidge(alpha=RIDGE, kernel="precomputed").fit(net.kernel(x).ntk, y)
    fitted = time.perf_counter()
    prediction = model.predict(net.kernel(x_test, x).ntk)
    return fitted - start, time.perf_counter() - fitted, prediction, {}


def _lazykit(x, y, x_test, solver, n_centers, centers, flow_time):
    import lazykit

    timing = {"ridge": 0.0, "t": flow_time * x.shape[0]} if flow_time else {"ridge": RIDGE}
    model = lazykit.NTKRegressor(depth=2, solver=solver, n_centers=n_centers, centers=centers,
                                 tol=1e-4, verbose=False, **timing)
    start = time.perf_counter()
    model.fit(x, y)
    fitted = time.perf_counter()
    prediction = model.predict(x_test)
    return fitted - start, time.perf_counter() - fitted, prediction, {
        "solver_": model.solver_, "n_iter": getattr(model, "n_iter_", None)}


def worker(n: int, method: str, n_centers: int, centers: str, flow_time: float) -> dict:
    x, y = make_data(n, seed=0)
    x_test, y_test = make_data(N_TEST, seed=1)
    if method == "sklearn":
        fit_s, predict_s, prediction, extra = _sklearn(x, y, x_test)
    else:
        fit_s, predict_s, prediction, extra = _lazykit(x, y, x_test, method, n_centers, centers,
                                                       flow_time)
    return {"n": n, "method": method, "n_centers": n_centers, "centers": centers,
            "flow_time": flow_time, "fit_s": fit_s,
            "predict_s": predict_s, "total_s": fit_s + predict_s,
            "test_mse": float(np.mean((prediction - y_test) ** 2)),
            "peak_gib": peak_rss_gib(), **extra}


def run_point(n: int, method: str, n_centers: int, centers: str, flow_time: float) -> dict:
    command = [sys.executable, __file__, "--worker", str(n), method, str(n_centers), centers,
               str(flow_time)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"n": n, "method": method, "n_centers": n_centers, "centers": centers,
                "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_plan(entries, default_centers: int):
    for entry in entries:
        n, methods = entry.split(":")
        for method in methods.split(","):
            name, _, centers = method.partition("@")
            yield int(float(n)), name, int(centers) if centers else default_centers


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 5.0))
    results = [r for r in results if "error" not in r and not r.get("flow_time")]
    labels = sorted({_label(r) for r in results})
    for label in labels:
        rows = sorted((r for r in results if _label(r) == label),
                      key=lambda r: r["n"])
        ns = [r["n"] for r in rows]
        ax_time.plot(ns, [r["total_s"] for r in rows], "o-", label=label)
        ax_mem.plot(ns, [r["peak_gib"] for r in rows], "o-", label=label)
    ax_time.axhline(180, color="gray", ls=":", lw=1)
    ax_mem.axhline(8 * 1e9 / 2**30, color="gray", ls=":", lw=1)
    ax_mem.axhline(12 * 1e9 / 2**30, color="gray", ls="--", lw=1)
    for ax, ylabel in ((ax_time, "fit + predict time (s)"), (ax_mem, "peak resident memory (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training points n")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax_time.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("NTK regression, ReLU depth 2, d=784 (2 CPU cores, 24 GiB; dotted: 3 min, "
                 "8 GB; dashed: 12 GB)", fontsize=10)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path, dpi=110)


def _label(row: dict) -> str:
    """One line per solver and centre choice; "auto" rows join the solver it picked."""
    method = row.get("solver_") or row["method"] if row["method"] == "auto" else row["method"]
    if method in ("nystrom", "cg") or row.get("solver_") == "nystrom":
        return f"lazykit {method} (M={row['n_centers']}, {row.get('centers', 'uniform')})"
    return "scikit-learn KernelRidge" if method == "sklearn" else f"lazykit {method}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        n, method, n_centers, centers, flow_time = sys.argv[2:7]
        print(json.dumps(worker(int(n), method, int(n_centers), centers, float(flow_time))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", nargs="+", required=True, help="entries n:method,method,...")
    parser.add_argument("--n-centers", type=int, default=2000)
    parser.add_argument("--centers", choices=("rpcholesky", "uniform"), default="uniform")
    parser.add_argument("--flow-time", type=float, default=0.0,
                        help="scaled training time S of a ridgeless flow (0: ridge 1, t = inf)")
    parser.add_argument("--out", type=Path, default=Path("docs/scale"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "scale.json"
    results = json.loads(store.read_text()) if store.exists() else []
    for n, method, centers in parse_plan(args.plan, args.n_centers):
        row = run_point(n, method, centers, args.centers, args.flow_time)
        results.append(row)
        store.write_text(json.dumps(results, indent=1))
        print(json.dumps(row), flush=True)
        plot(results, args.out / "scale.png")


if __name__ == "__main__":
    main()
